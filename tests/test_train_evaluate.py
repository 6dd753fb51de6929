"""A tiny end-to-end training run, a resumable checkpoint, and `evaluate` on a few shared NIH images."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch

from conftest import write_csv
from cxrdemo.training.checkpoint import load_checkpoint, save_checkpoint
from cxrdemo.models.config import ModelConfig
from cxrdemo.cli import main as cli_main
from cxrdemo.audit.result import AUDIT_KEYS
from cxrdemo.evalresult import REPORT_KEYS
from cxrdemo.models.cln import MultiTaskNet
from cxrdemo.models.backbones import backbone_stages
from cxrdemo.training.prepare import init_box_head_at_priors
from cxrdemo.models.weights import load_model

REPO = Path(__file__).resolve().parent.parent
NIH = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))
N_IMAGES = 14


def _need_data() -> None:
    if not (NIH / "images").is_dir() or not (NIH / "labels.csv").is_file():
        pytest.skip(f"shared NIH data not found at {NIH}; set CXRDEMO_DATA")


@pytest.fixture(scope="module")
def few_images(tmp_path_factory) -> dict[str, Path]:
    """A label CSV for a handful of shared images (the boxed ones first), pointing at the shared folder."""
    _need_data()
    tmp = tmp_path_factory.mktemp("few")
    boxed = [r[0] for r in csv.reader((NIH / "boxes.csv").open()) if r and r[0].endswith(".png")]
    rows = list(csv.DictReader((NIH / "labels.csv").open()))
    present = {p.name for p in (NIH / "images").iterdir()}
    chosen = list(dict.fromkeys(n for n in boxed if n in present))[:6]
    chosen += [r["Image Index"] for r in rows if r["Image Index"] in present and r["Image Index"] not in chosen][: N_IMAGES - len(chosen)]
    keep = [r for r in rows if r["Image Index"] in chosen]
    labels = write_csv(tmp / "labels.csv", keep)
    names = tmp / "names.txt"
    names.write_text("\n".join(chosen) + "\n")
    return {"labels": labels, "names": names, "tmp": tmp}


@pytest.fixture(scope="module")
def trained(few_images) -> Path:
    out = few_images["tmp"] / "run"
    argv = [
        "train", "--images", str(NIH / "images"), "--labels", str(few_images["labels"]), "--boxes", str(NIH / "boxes.csv"),
        "--out", str(out), "--backbone", "mobilenet_v3_small", "--pretrained", "none", "--input-size", "64",
        "--epochs", "1", "--warmup-epochs", "0", "--stage2-epochs", "1", "--batch-size", "8", "--val-fraction", "0.3",
        "--no-disk-cache", "--no-plots", "--quiet", "--threads", "2", "--seed", "3", "--split-seed", "0", "--init-seed", "1",
    ]  # fmt: skip
    assert cli_main(argv) == 0  # through the CLI, as users run it
    return out


def test_training_produces_a_loadable_folder(trained: Path):
    folder = trained / "model"
    names = {"config.json", "model.safetensors", "model.safetensors.sha256", "README.md", "data_splits.json"}
    assert {p.name for p in folder.iterdir()} == names
    loaded = load_model(folder, device="cpu")
    split = json.loads((trained / "split.json").read_text())  # the run's split, as the model folder records it
    assert loaded.splits is not None
    assert loaded.splits.train == set(split["train"]) and loaded.splits.validation == set(split["val"])
    cfg = loaded.config
    assert cfg.architecture == "mobilenet_v3_small" and cfg.input_size == 64
    assert set(cfg.thresholds) == set(cfg.classes)
    assert set(cfg.prior_boxes) == set(cfg.box_classes)
    assert cfg.extra["training"]["seed"] == 3 and cfg.extra["training"]["split_seed"] == 0  # --split-seed fixes the split
    assert cfg.extra["training"]["init_seed"] == 1 and "heads initialised with seed 1" in (folder / "README.md").read_text()
    from cxrdemo.datasets.samples import load_samples, split_patients
    from cxrdemo.datasets.nih import NIH_CLASSES

    samples = load_samples(NIH / "images", trained.parent / "labels.csv", NIH / "boxes.csv", NIH_CLASSES).samples
    assert split["seed"] == 0 and split["val"] == [s.name for s in split_patients(samples, 0.3, 0)[1]]
    assert cfg.extra["training"]["command"].startswith("python -m cxrdemo train --images ")  # what was typed
    card = (folder / "README.md").read_text()
    assert loaded.sha256 in card and "Exact command" in card and "Limitations" in card and "{sha256}" not in card
    with torch.no_grad():
        out = loaded.model(torch.zeros(1, 3, 64, 64))
    assert out.logits.shape == (1, 14) and out.boxes.shape == (1, 8, 4)
    log = [json.loads(l) for l in (trained / "log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log] == ["classify", "joint", "joint"]
    assert (trained / "eval" / "report.json").is_file() and (trained / "checkpoint" / "state.json").is_file()
    assert (trained / "val_images.txt").read_text().strip()


def test_evaluate_report_schema(trained: Path, few_images, tmp_path: Path, capsys):
    out = tmp_path / "eval"
    argv = [
        "evaluate", "--images", str(NIH / "images"), "--labels", str(few_images["labels"]), "--boxes", str(NIH / "boxes.csv"),
        "--weights", str(trained / "model"), "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "5",
    ]
    assert cli_main(argv) == 0
    # Every image was in the run's training or validation split: said on stderr and in report.md.
    captured = capsys.readouterr()
    assert "these numbers are not a test of the model" in captured.err
    assert "mean of the per-class shares" in captured.out  # a mean over classes, said so
    report = json.loads((out / "report.json").read_text())
    assert tuple(report) == REPORT_KEYS + AUDIT_KEYS  # today's keys first, unchanged; the audit's after them
    assert report["n_images"] == N_IMAGES and report["n_boxes"] >= 6
    assert set(report["auc"]) == set(ModelConfig().classes)
    assert all(v is None or 0.0 <= v <= 1.0 for v in report["auc"].values())
    for key in ("iou_accuracy", "cam_iou_accuracy", "prior_iou_accuracy"):
        assert list(report[key]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
        for row in report[key].values():
            assert set(row) == set(ModelConfig().box_classes) | {"mean"}
            assert row["mean"] is not None and 0.0 <= row["mean"] <= 1.0
    assert set(report["model"]) == {"source", "revision", "architecture"}
    assert report["timings"]["images_per_second"] > 0
    md = (out / "report.md").read_text()
    assert "CLN-CheXNet (paper)" in md and "prior boxes" in md
    assert "- **note:** " in md and "training images" in md
    assert (out / "roc.png").is_file() and (out / "iou_accuracy.png").is_file()
    # deterministic: another batch size gives the same numbers
    again = tmp_path / "again"
    assert cli_main(argv[:-7] + ["--out", str(again), "--device", "cpu", "--quiet", "--no-plots"]) == 0
    second = json.loads((again / "report.json").read_text())
    assert second["auc"] == pytest.approx(report["auc"]) and second["iou_accuracy"] == report["iou_accuracy"]


def test_checkpoint_round_trip(tmp_path: Path):
    cfg = ModelConfig(architecture="mobilenet_v3_small", input_size=32)
    model = MultiTaskNet(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 32, 32)).logits.sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ckpt", model, opt, {"epoch": 3, "best": float("-inf"), "history": [{"a": 1}]})
    other = MultiTaskNet(cfg)
    opt2 = torch.optim.AdamW(other.parameters(), lr=5.0)
    state = load_checkpoint(tmp_path / "ckpt", other, opt2)
    assert state["epoch"] == 3 and state["best"] == float("-inf")
    assert opt2.param_groups[0]["lr"] == 1e-3
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_box_head_starts_at_the_priors():
    cfg = ModelConfig(architecture="mobilenet_v3_small", input_size=32)
    model = MultiTaskNet(cfg).eval()
    priors = {c: [0.1 + 0.01 * i, 0.2, 0.6, 0.7 + 0.01 * i] for i, c in enumerate(cfg.box_classes)}
    init_box_head_at_priors(model, priors)
    with torch.no_grad():
        boxes = model(torch.randn(3, 3, 32, 32)).boxes
    for k, c in enumerate(cfg.box_classes):
        assert boxes[:, k].tolist() == [pytest.approx(priors[c], abs=0.02)] * 3
    assert len(backbone_stages(model.backbone)) == 13

