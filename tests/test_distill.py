"""Knowledge distillation: the teacher CSV, the blended loss, and a tiny training run that records the teacher."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import write_csv
from cxrdemo.cli import main as cli_main
from cxrdemo.errors import InputError
from cxrdemo.training.losses import classification_loss, cln_loss, distillation_bce, weighted_bce
from cxrdemo.datasets.nih import NIH_CLASSES
from cxrdemo.training.teacher import bootstrap_mean_auc, mean_auc, read_teacher_predictions

REPO = Path(__file__).resolve().parent.parent
NIH = Path(os.environ.get("CXRDEMO_DATA", REPO.parent / "shared" / "data" / "nih"))
TEACHER = NIH.parent / "teacher" / "reproduce-chexnet_predictions.csv"
HEADER = ["Image Index", *(f"prob_{c}" for c in NIH_CLASSES)]


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------------- the file
def test_reads_a_well_formed_file(tmp_path: Path):
    rows = [["a.png", *np.linspace(0, 1, 14)], ["b.png", *([0.5] * 14)]]
    t = read_teacher_predictions(_write(tmp_path / "t.csv", HEADER, rows), NIH_CLASSES)
    assert len(t) == 2 and t.probs["a.png"][-1] == pytest.approx(1.0)
    probs, mask = t.targets_for(["b.png", "zzz.png"])
    assert mask.tolist() == [True, False] and probs[0].tolist() == [0.5] * 14 and probs[1].sum() == 0


@pytest.mark.parametrize(
    "header, row, words",
    [
        (HEADER[:1] + HEADER[2:], ["a.png", *([0.1] * 13)], "missing column(s) prob_Atelectasis"),
        (HEADER, ["a.png", 1.5, *([0.1] * 13)], "prob_Atelectasis = 1.5 lies outside [0, 1]"),
        (HEADER, ["a.png", -0.1, *([0.1] * 13)], "outside [0, 1]"),
        (HEADER, ["a.png", "nan", *([0.1] * 13)], "outside [0, 1]"),
        (HEADER + ["prob_Covid"], ["a.png", *([0.1] * 15)], "unknown label name(s) prob_Covid"),
        (HEADER[1:], [*([0.1] * 14)], "no 'Image Index' column"),
        (HEADER, ["a.png", "x", *([0.1] * 13)], "not a number"),
    ],
)
def test_malformed_files_give_one_line_errors(tmp_path: Path, header, row, words):
    path = _write(tmp_path / "t.csv", header, [row])
    with pytest.raises(InputError) as err:
        read_teacher_predictions(path, NIH_CLASSES)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_cli_reports_a_bad_teacher_file_on_one_line(tmp_path: Path, capsys):
    bad = _write(tmp_path / "t.csv", HEADER, [["a.png", 2.0, *([0.1] * 13)]])
    argv = ["train", "--images", str(tmp_path), "--labels", str(tmp_path / "none.csv"), "--out", str(tmp_path / "run"),
            "--teacher-predictions", str(bad)]  # fmt: skip
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --teacher-predictions") and "outside [0, 1]" in err[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------- the loss
def test_loss_blends_teacher_and_labels_per_image():
    torch.manual_seed(0)
    z, y = torch.randn(4, 14), (torch.rand(4, 14) > 0.7).float()
    pw = torch.full((14,), 3.0)
    p = torch.rand(4, 14)
    has = torch.tensor([True, True, False, False])
    a = 0.7
    got = classification_loss(z, y, pw, p, has, a, 1.0)
    label = F.binary_cross_entropy_with_logits(z, y, pos_weight=pw, reduction="none").mean(1)
    kd = F.binary_cross_entropy_with_logits(z, p, reduction="none").mean(1)
    want = torch.cat([a * kd[:2] + (1 - a) * label[:2], label[2:]]).mean()
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    # no teacher row, or weight 0: exactly today's weighted BCE
    assert float(classification_loss(z, y, pw, p, torch.zeros(4, dtype=torch.bool), a)) == pytest.approx(float(weighted_bce(z, y, pw)))
    assert float(classification_loss(z, y, pw, p, has, 0.0)) == pytest.approx(float(weighted_bce(z, y, pw)))
    # the box term of the CLN loss is unchanged by distillation
    boxes = torch.rand(4, 8, 4)
    gtb, gtc = torch.zeros(4, 2, 4), torch.full((4, 2), -1)
    parts = cln_loss(z, boxes, y, gtb, gtc, pw, 0.4, use_boxes=True, teacher_probs=p, has_teacher=has, distill_weight=a)
    assert parts.classification == pytest.approx(float(want), rel=1e-6) and parts.box == 0.0


def test_temperature_softens_both_sides_and_scales_by_t_squared():
    z = torch.tensor([[2.0, -1.0]])
    p = torch.tensor([[0.9, 0.2]])
    t = 2.0
    q = torch.sigmoid(torch.log(p / (1 - p)) / t)
    want = t * t * F.binary_cross_entropy_with_logits(z / t, q, reduction="none").mean(1)
    assert distillation_bce(z, p, t).tolist() == pytest.approx(want.tolist())
    # the student is pulled towards the teacher: zero gradient exactly at the teacher's logits, at any T
    for temp in (1.0, 2.0, 4.0):
        at = torch.log(p / (1 - p)).clone().requires_grad_(True)
        distillation_bce(at, p, temp).sum().backward()
        assert at.grad.abs().max() < 1e-5


def test_bootstrap_interval_brackets_the_point_estimate():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) > 0.7).astype(float)
    good = y * 0.6 + rng.random((60, 3)) * 0.5
    noise = rng.random((60, 3))
    ours, other = bootstrap_mean_auc(y, good, noise, n=200, seed=0)
    assert ours["lo"] <= ours["mean_auc"] <= ours["hi"] and ours["mean_auc"] == pytest.approx(mean_auc(y, good))
    assert ours["mean_auc"] > other["mean_auc"] and ours["diff_lo"] > 0  # the paired difference is clearly positive


# ------------------------------------------------------------------------------------------------ a tiny run
def test_training_with_a_teacher_records_it(tmp_path: Path, capsys):
    if not (NIH / "images").is_dir() or not TEACHER.is_file():
        pytest.skip(f"shared NIH data or teacher file not found under {NIH.parent}; set CXRDEMO_DATA")
    teacher_rows = {r["Image Index"]: r for r in csv.DictReader(TEACHER.open())}
    rows = list(csv.DictReader((NIH / "labels.csv").open()))
    present = {p.name for p in (NIH / "images").iterdir()}
    with_t = [r for r in rows if r["Image Index"] in present and r["Image Index"] in teacher_rows][:9]
    without = [r for r in rows if r["Image Index"] in present and r["Image Index"] not in teacher_rows][:3]
    labels = write_csv(tmp_path / "labels.csv", with_t + without)
    # the project's file name, so the card names its source and licence; only the rows of these images
    teacher = write_csv(tmp_path / "reproduce-chexnet_predictions.csv", (teacher_rows[r["Image Index"]] for r in with_t), HEADER)
    out = tmp_path / "run"
    argv = [
        "train", "--images", str(NIH / "images"), "--labels", str(labels), "--out", str(out),
        "--backbone", "mobilenet_v3_small", "--pretrained", "none", "--input-size", "48", "--epochs", "1",
        "--warmup-epochs", "0", "--stage2-epochs", "0", "--batch-size", "8", "--val-fraction", "0.25",
        "--no-disk-cache", "--no-plots", "--quiet", "--threads", "2",
        "--teacher-predictions", str(teacher), "--distill-weight", "0.6", "--distill-temperature", "2",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    err = capsys.readouterr().err
    split = json.loads((out / "split.json").read_text())
    n_with = sum(n in {r["Image Index"] for r in with_t} for n in split["train"])
    assert f"teacher: {n_with} of {len(split['train'])} training images have teacher probabilities" in err
    assert "warning: the validation split holds no radiologist box" in err  # no boxes CSV at all
    cfg = json.loads((out / "model" / "config.json").read_text())
    info = cfg["extra"]["training"]["teacher"]
    assert info["train_images_with_teacher"] == n_with and info["train_images"] == len(split["train"])
    assert info["distill_weight"] == 0.6 and info["distill_temperature"] == 2.0
    assert "BSD 3-Clause" in info["licence"] and "jrzech/reproduce-chexnet" in info["source"]
    ci = cfg["extra"]["training"]["validation_ci"]
    assert ci["n_resamples"] == 1000 and ci["seed"] == 0
    card = (out / "model" / "README.md").read_text()
    assert "Knowledge distillation" in card and "John Zech" in card and "BSD 3-Clause" in card
    assert "Copyright (c) 2018, John Zech" in card.split("## Attribution", 1)[1]  # the licence travels with the model
    assert f"{n_with} of {len(split['train'])}" in card and "Mean AUC (95% CI)" in card
    assert math.isfinite(json.loads((out / "log.jsonl").read_text().splitlines()[0])["train_loss"])
