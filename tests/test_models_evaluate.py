"""``evaluate`` (the audit engine) on a foreign model: what is scored, what is skipped, and why."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import BOXED, DATA, write_csv
from model_formats import timm_folder

from cxrdemo.cli import main as cli_main

LABELS = ["Cardiomegaly", "Pleural Effusion", "Infiltrate", "Atelectasis", "No Finding"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict:
    tmp = tmp_path_factory.mktemp("foreign-eval")
    names = sorted(BOXED)
    rows = [r for r in csv.DictReader((DATA / "labels.csv").open()) if r["Image Index"] in set(names)]
    labels = write_csv(tmp / "labels.csv", rows)
    (tmp / "names.txt").write_text("\n".join(names) + "\n")
    model = timm_folder(tmp, "vit_tiny_patch16_224", LABELS, img_size=96)  # timm's ViT default: crop_pct 0.9
    out = tmp / "run"
    argv = [
        "evaluate", "--images", str(data_dir / "images"), "--labels", str(labels), "--boxes", str(data_dir / "boxes.csv"),
        "--weights", f"timm:{model}", "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "3", "--workers", "0",
        "--bootstrap", "200", "--names", str(tmp / "names.txt"), "--cam-methods", "gradcam,layercam", "--faithfulness",
        "--faithfulness-images", "1", "--no-plots",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    return {"out": out, "model": model}


def test_only_nih_matched_labels_are_scored(run: dict) -> None:
    report = json.loads((run["out"] / "report.json").read_text())
    assert set(report["auc"]) == {"Cardiomegaly", "Effusion", "Infiltration", "Atelectasis"}  # not "No Finding"
    assert report["model"]["format"] == "timm"
    assert report["n_boxes"] > 0 and report["cam_iou_accuracy"]  # CAM boxes are scored
    notes = (run["out"] / "report.md").read_text()
    assert "not scored (no NIH match): No Finding" in notes


def test_cam_boxes_scored_model_boxes_skipped(run: dict) -> None:
    rows = list(csv.DictReader((run["out"] / "cases.csv").open()))
    assert rows, "the boxed images must give CAM box rows"
    assert all(r["model_iou"] == "" for r in rows)  # no box head: no model-box IoU, not a zero
    assert all(r["class"] in {"Cardiomegaly", "Effusion", "Infiltration", "Atelectasis"} for r in rows)
    assert {r["method"] for r in rows} == {"gradcam", "layercam"}


def test_compare_weights_across_formats_matches_outputs_by_name(tmp_path: Path, data_dir: Path) -> None:
    """The shipped folder audited with its timm export (alphabetical outputs) as ``--compare-weights``."""
    import torch

    from cxrdemo.audit.perimage import BatchAuditor, Plan
    from cxrdemo.models.export import export_timm
    from cxrdemo.models.weights import EMBEDDED_DIR, load_model

    native = load_model(str(EMBEDDED_DIR), device="cpu")
    export = export_timm(native.model, tmp_path / "export", alphabetical=True)
    other = load_model(f"timm:{export}", device="cpu")
    auditor = BatchAuditor(native.model, Plan(methods=("gradcam",)), torch.device("cpu"), other.model)
    assert [other.config.classes[i] for i in auditor.compare_order] == list(native.config.classes)
    assert other.config.classes != native.config.classes  # the orders differ: matching by index would be wrong

    names = sorted(BOXED)[:3]
    rows = [r for r in csv.DictReader((DATA / "labels.csv").open()) if r["Image Index"] in set(names)]
    labels = write_csv(tmp_path / "labels.csv", rows)
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    out = tmp_path / "run"
    argv = [
        "evaluate", "--images", str(data_dir / "images"), "--labels", str(labels), "--weights", str(EMBEDDED_DIR),
        "--compare-weights", f"timm:{export}", "--out", str(out), "--device", "cpu", "--quiet", "--workers", "0",
        "--bootstrap", "50", "--names", str(tmp_path / "names.txt"), "--no-plots",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"][0]["kind"] == "weights" and report["baseline"][0]["n_common"] == len(names)
