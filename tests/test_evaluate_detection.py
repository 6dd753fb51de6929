"""``evaluate`` with a detector: a fake one returns known boxes on 5 shared NIH images (3 with an NIH box), so every
detection figure of report.json is worked out by hand below. Without a detector the report has no detection part.

The fake is the small test model with a ``predict_boxes`` method (the :class:`cxrdemo.audit.detection.BoxPredictor`
protocol) attached at load time; it recognises each image by a digest of its decoded pixels. Outputs go to tmp_path.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.boxes import Box
from cxrdemo.cli import main as cli_main

from conftest import DATA, calibrated_model_folder, write_csv

CARDIO, ATELEC, PNEUMO = "00013125_000.png", "00000468_017.png", "00022084_000.png"
CLEAN, EMPTY = "00000001_000.png", "00000001_001.png"
NAMES = sorted([CARDIO, ATELEC, PNEUMO, CLEAN, EMPTY])
#: report.json writes figures rounded to 6 decimals: a hand value is met within half a unit of the 6th.
ROUND = 5e-7


def _digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes() + str(pixels.shape).encode()).hexdigest()


def _nih_box(name: str) -> Box:
    with (DATA / "boxes.csv").open(newline="") as handle:
        for row in csv.reader(handle):
            if row and row[0] == name:
                return Box.from_xywh(*map(float, row[2:6]), label=row[1])
    raise AssertionError(f"{name} has no NIH box")


def _predictions() -> dict[str, list[Box]]:
    """Per image, the fake detector's boxes (see the expected figures in the test)."""
    cardio = _nih_box(CARDIO)
    atel = _nih_box(ATELEC)
    dx = atel.width * 0.55 / 1.45  # a same-size box shifted by dx: IoU (w - dx) / (w + dx) = 0.45
    return {
        CARDIO: [Box(*cardio.xyxy, "Cardiomegaly", 0.9), Box(10, 10, 110, 110, "Nodule", 0.3)],
        ATELEC: [Box(atel.x1 + dx, atel.y1, atel.x2 + dx, atel.y2, "Atelectasis", 0.8)],
        PNEUMO: [],
        CLEAN: [Box(100, 100, 400, 400, "Cardiomegaly", 0.95)],
        EMPTY: [],
    }


class FakeDetector:
    """``predict_boxes(images)``: the boxes of :func:`_predictions` of each image, found by its pixels' digest."""

    def __init__(self, images: Path) -> None:
        from cxrdemo.imaging import load_image

        table = _predictions()
        self.by_digest = {_digest(load_image(images / n).pixels): boxes for n, boxes in table.items()}

    def __call__(self, images):
        return [list(self.by_digest[_digest(p)]) for p in images]


@pytest.fixture(scope="module")
def setup(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("detect")
    rows = [r for r in csv.DictReader((data_dir / "labels.csv").open()) if r["Image Index"] in set(NAMES)]
    boxes = [r for r in csv.reader((data_dir / "boxes.csv").open()) if r and r[0] in set(NAMES)]
    with (tmp / "boxes.csv").open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["Image Index", "Finding Label", "Bbox [x,y,w,h]", "", "", ""])
        w.writerows(boxes)
    assert sorted(b[0] for b in boxes) == sorted([CARDIO, ATELEC, PNEUMO])  # one box each on these three
    return {
        "labels": write_csv(tmp / "labels.csv", rows), "boxes": tmp / "boxes.csv", "images": data_dir / "images",
        "model": calibrated_model_folder(tmp / "model", 64, batches=2),
    }  # fmt: skip


def _run(setup: dict[str, Path], out: Path) -> dict:
    argv = [
        "evaluate", "--images", str(setup["images"]), "--labels", str(setup["labels"]), "--boxes", str(setup["boxes"]),
        "--weights", str(setup["model"]), "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "2",
        "--workers", "0", "--bootstrap", "50", "--no-plots",
    ]  # fmt: skip
    assert cli_main(argv) == 0
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def detector_run(setup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cxrdemo.models.weights as weights

    real = weights.load_model
    fake = FakeDetector(setup["images"])

    def load_detector(source=None, *, device=None, sha256=None):
        loaded = real(source, device=device, sha256=sha256)
        loaded.model.predict_boxes = fake  # the BoxPredictor protocol
        loaded.model.score_threshold = 0.5
        return loaded

    mp = pytest.MonkeyPatch()
    mp.setattr(weights, "load_model", load_detector)
    try:
        out = tmp_path_factory.mktemp("detect-out") / "run"
        _run(setup, out)
    finally:
        mp.undo()
    return out


def test_detection_figures_equal_the_hand_computation(detector_run: Path):
    doc = json.loads((detector_run / "report.json").read_text())["detection"]
    assert doc["n_images"] == 5 and doc["n_truth"] == 3 and doc["n_predicted"] == 4 and doc["n_unscored"] == 0
    ap4, ap5 = doc["ap"]["0.4"], doc["ap"]["0.5"]
    # Cardiomegaly: ranked 0.95 (false, CLEAN), 0.9 (exact): recall 1 reached at precision 1/2 -> AP 0.5
    # Atelectasis: its one box has IoU 0.45: a hit at 0.4 (AP 1), a false box at 0.5 (AP 0)
    # Pneumonia: no box (AP 0); Nodule: a box but no ground truth (AP undefined, out of the mean)
    expect4 = {"Cardiomegaly": 0.5, "Atelectasis": 1.0, "Pneumonia": 0.0}
    expect5 = {"Cardiomegaly": 0.5, "Atelectasis": 0.0, "Pneumonia": 0.0}
    for ap, expect in ((ap4, expect4), (ap5, expect5)):
        for c, v in expect.items():
            assert ap["per_class"][c]["value"] == pytest.approx(v, abs=ROUND), c
        assert ap["per_class"]["Nodule"]["value"] is None
        assert sorted(ap["classes_in_mean"]) == sorted(expect)
        assert ap["mean"]["value"] == pytest.approx(np.mean(list(expect.values())), abs=ROUND)
    assert ap4["n_predicted"]["Nodule"] == 1 and ap4["n_truth"]["Nodule"] == 0
    # FROC, boxes pooled: 0.95 false, 0.9 hit, 0.8 hit at 0.4 (false at 0.5), 0.3 false; 5 images, 3 findings
    f4 = {k: v["value"] for k, v in doc["froc"]["0.4"]["sensitivity"].items()}
    assert f4 == pytest.approx({"1/8": 0.0, "1/4": 2 / 3, "1/2": 2 / 3, "1": 2 / 3, "2": 2 / 3, "4": 2 / 3, "8": 2 / 3}, abs=ROUND)
    assert doc["froc"]["0.4"]["mean"]["value"] == pytest.approx(4 / 7, abs=ROUND)
    assert doc["froc"]["0.5"]["mean"]["value"] == pytest.approx(6 / 3 / 7, abs=ROUND)
    # IoU accuracy at score >= 0.5: Cardiomegaly IoU 1, Atelectasis 0.45, Pneumonia 0
    acc = doc["iou_accuracy"]
    assert acc["0.4"]["Atelectasis"]["value"] == 1.0 and acc["0.5"]["Atelectasis"]["value"] == 0.0
    assert acc["0.7"]["Cardiomegaly"]["value"] == 1.0 and acc["0.1"]["Pneumonia"]["value"] == 0.0
    assert acc["0.1"]["mean"]["value"] == pytest.approx(2 / 3, abs=ROUND) and acc["0.5"]["mean"]["value"] == pytest.approx(1 / 3, abs=ROUND)
    # 5 images: fewer than the audit's minimum for an interval, so the CIs are withheld and say so
    assert ap4["mean"]["low"] is None and ap4["mean"]["interval"]
    # the gallery's order: the missed Pneumonia first, then the image with the confident false box
    errors = doc["errors"]["images"]
    assert [e["image"] for e in errors] == [PNEUMO, CLEAN]
    assert errors[1]["false_boxes"][0]["score"] == 0.95 and errors[0]["missed"][0]["label"] == "Pneumonia"
    from cxrdemo.evaluate import detection_line

    line = detection_line(doc)  # what the command prints after its summary
    assert "mAP@0.5 0.167 over 3 classes; mAP@0.4 0.500 over 3 classes" in line and "(IoU 0.4) 0.571" in line


def test_report_and_gallery_show_the_detection_section(detector_run: Path):
    md = (detector_run / "report.md").read_text()
    assert "## Detection: the detector's boxes against the ground-truth boxes" in md
    assert "AP@0.5 [95% CI]" in md and "AP@0.4 [95% CI]" in md and "**FROC**" in md and "**IoU accuracy**" in md
    assert f"| {PNEUMO} | Pneumonia | - |" in md and f"| {CLEAN} | - | Cardiomegaly 0.95 |" in md
    page = (detector_run / "gallery.html").read_text()
    assert "Detector: the cases it got wrong, worst first" in page
    assert page.index(f"data-image='{PNEUMO}'") < page.index(f"data-image='{CLEAN}'")
    errors = json.loads((detector_run / "report.json").read_text())["detection"]["errors"]["images"]
    for e in errors:  # each image with an error has its picture: ground truth and the detector's boxes
        assert e["thumbnail"] == f"gallery/{Path(e['image']).stem}_detector.jpg"
        assert (detector_run / e["thumbnail"]).stat().st_size > 0 and f"src='{e['thumbnail']}'" in page


def test_audit_page_summary_gives_the_detectors_headline(detector_run: Path):
    from cxrdemo.webapp.audit_view import detection_lines

    doc = json.loads((detector_run / "report.json").read_text())["detection"]
    text = "\n".join(detection_lines(doc))
    assert "| mAP@0.5 | mAP@0.4 | FROC mean, IoU 0.5 | FROC mean, IoU 0.4 |" in text
    assert "| 0.167 (n = 5: too few for a CI) | 0.500 (n = 5: too few for a CI) |" in text
    assert detection_lines(None) == []


def test_froc_plot(detector_run: Path, tmp_path: Path):
    from types import SimpleNamespace

    from PIL import Image

    from cxrdemo.audit.outputs import plot_froc

    doc = json.loads((detector_run / "report.json").read_text())["detection"]
    made = plot_froc(SimpleNamespace(detection=doc), tmp_path / "froc.png")
    assert made is not None and Image.open(made).size[0] > 300
    assert plot_froc(SimpleNamespace(detection=None), tmp_path / "none.png") is None


def test_without_a_detector_nothing_changes(setup, tmp_path: Path):
    doc = _run(setup, tmp_path / "plain")
    assert doc["detection"] is None
    md = (tmp_path / "plain" / "report.md").read_text()
    assert "## Detection" not in md
    assert "Detector:" not in (tmp_path / "plain" / "gallery.html").read_text()


def test_a_detector_box_without_score_is_one_line(setup, tmp_path: Path, monkeypatch, capsys):
    import cxrdemo.models.weights as weights

    real = weights.load_model

    def load_broken(source=None, *, device=None, sha256=None):
        loaded = real(source, device=device, sha256=sha256)
        loaded.model.predict_boxes = lambda images: [[Box(0, 0, 10, 10, "Cardiomegaly", None)] for _ in images]
        return loaded

    monkeypatch.setattr(weights, "load_model", load_broken)
    argv = [
        "evaluate", "--images", str(setup["images"]), "--labels", str(setup["labels"]), "--boxes", str(setup["boxes"]),
        "--weights", str(setup["model"]), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet",
        "--batch-size", "2", "--workers", "0", "--bootstrap", "10", "--no-plots", "--no-gallery",
    ]  # fmt: skip
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the detector returned an unusable box") and "finite score" in err[0]


@pytest.mark.parametrize("kind", ["torchvision", "detr"])
def test_a_real_detector_through_evaluate(kind: str, setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real (random, tiny) torchvision or transformers detector through ``cxrdemo evaluate``: the audit runs its
    own pass on every film (DetectorBase.predict_boxes), scores every candidate box (report.json's ``detection``),
    and its class probabilities in predictions.csv are each class's highest box score, the same as the single-case
    Predictor's pass on the same film (the same network, the same preprocessing, one film at a time: equal to float
    rounding; tests/test_detectors.py checks that pass against each library's own pipeline)."""
    from model_formats import hf_detector_folder, tv_detector_folder

    from cxrdemo.imaging import load_image
    from cxrdemo.models.detector_base import class_scores
    from cxrdemo.predict import Predictor

    labels = ["Cardiomegaly", "Atelectasis", "Pneumonia"]
    if kind == "torchvision":
        # box_score_thresh 0: the random network's candidates all come back, so there are boxes to score
        folder = tv_detector_folder(tmp_path / "det", labels=labels, box_score_thresh=0.0)
    else:  # transformers' post-processing at its floor returns every query's box
        folder = hf_detector_folder(tmp_path / "det", kind, labels=labels)
    out = tmp_path / "run"
    argv = ["evaluate", "--images", str(setup["images"]), "--labels", str(setup["labels"]), "--boxes", str(setup["boxes"]),
            "--weights", str(folder), "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "2",
            "--workers", "0", "--bootstrap", "50", "--no-plots"]  # fmt: skip
    assert cli_main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    predictor = Predictor.from_source(str(folder), device="cpu")
    found = {n: predictor.forward(load_image(setup["images"] / n)).detections for n in NAMES}
    doc = report["detection"]
    assert doc["n_images"] == len(NAMES) and doc["n_predicted"] == sum(len(b) for b in found.values()) > 0
    assert doc["n_truth"] == 3  # the NIH boxes of the three boxed images, in the detector's classes
    assert set(doc["ap"]) == {"0.4", "0.5"} and "froc" in doc and "iou_accuracy" in doc
    classes = predictor.config.classes
    with (out / "predictions.csv").open(newline="") as handle:
        rows = {r["Image Index"]: r for r in csv.DictReader(handle)}
    for name in NAMES:
        expected = class_scores(found[name], classes)
        got = np.array([float(rows[name][f"prob_{c}"]) for c in classes])
        assert got == pytest.approx(expected, abs=1e-5), name  # predictions.csv writes 6 decimals
    assert "a detector: its boxes are scored" in capsys.readouterr().err


def test_a_detector_refuses_road_and_sanity_in_one_line(setup, tmp_path: Path) -> None:
    from model_formats import tv_detector_folder

    folder = tv_detector_folder(tmp_path / "det")
    argv = ["evaluate", "--images", str(setup["images"]), "--labels", str(setup["labels"]), "--weights", str(folder),
            "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet", "--faithfulness"]  # fmt: skip
    assert cli_main(argv) != 0
