"""``evaluate --labels/--boxes`` with ground truth in other layouts: the same NIH boxes and labels written as
VinDr-CXR files (nested image folder, VinDr's own class spellings), or the same boxes as a COCO, VinBigData,
ChestX-Det (one image's boxes as polygons: scored by their box) or MS-CXR file beside NIH's labels, give the same
report figures as NIH's own CSVs, to 1e-9 (the boxes come back within 1e-9 px and pass through the same
arithmetic; no IoU lies within 1e-9 of a threshold here, or the two runs could differ by one match). CheXpert labels
with an uncertain label follow the ``--uncertain`` policy per class, checked against scikit-learn by hand."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from cxrdemo.cli import main as cli_main
from cxrdemo.datasets.nih import NIH_CLASSES
from tests import datasets_fixtures as fx

from conftest import BOXED, DATA, write_csv
from test_evaluate_audit import OTHERS, TEACHER, _labels, json_close, small_model  # noqa: F401 (the session fixture)

#: VinDr's spelling of the NIH classes it names differently (the shared vocabulary maps them back).
VINDR_SPELLING = {"Effusion": "Pleural effusion", "Fibrosis": "Pulmonary fibrosis", "Pleural_Thickening": "Pleural thickening"}
FIGURES = ("n_images", "n_boxes", "auc", "mean_auc", "iou_accuracy", "cam_iou_accuracy", "prior_iou_accuracy",
           "plausibility", "plausibility_reference")


@pytest.fixture(scope="module")
def setting(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("layouts-eval")
    names = sorted([*BOXED, *OTHERS])
    labels = _labels(tmp, names)
    ref = [r for r in fx.nih_reference(data_dir) if f"{r[0]}.png" in names]
    nested = tmp / "vindr-images"
    for k, name in enumerate(names):
        sub = nested / ("train" if k % 2 else "test") / "x"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / "images" / name, sub / name)
    return {"tmp": tmp, "names": names, "labels": labels, "ref": ref, "nested": nested}


def _without(doc: dict, key: str) -> dict:
    return {k: v for k, v in doc.items() if k != key}


def _run(images: Path, labels: Path, boxes: Path, model: Path, out: Path, *extra: str) -> dict:
    argv = ["evaluate", "--images", str(images), "--labels", str(labels), "--boxes", str(boxes), "--weights", str(model),
            "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "4", "--workers", "0", "--bootstrap", "200",
            "--no-plots", "--no-gallery", *extra]  # fmt: skip
    assert cli_main(argv) == 0
    return json.loads((out / "report.json").read_text())


def _vindr_files(setting: dict) -> Path:
    folder = setting["tmp"] / "vindr"
    folder.mkdir(exist_ok=True)
    rows = [[s, "R1", VINDR_SPELLING.get(lab, lab), b.x1, b.y1, b.x2, b.y2] for s, lab, b in setting["ref"]]
    nih_rows = {r["Image Index"]: r["Finding Labels"].split("|") for r in csv.DictReader(setting["labels"].open())}
    rows += [[Path(n).stem, "R1", "No finding", "", "", "", ""] for n, found in nih_rows.items() if found == ["No Finding"]]
    ann = fx._csv(folder / "annotations_test.csv", ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"], rows)
    cols = [VINDR_SPELLING.get(c, c) for c in NIH_CLASSES] + ["No finding"]
    label_rows = [{"image_id": Path(n).stem, **{VINDR_SPELLING.get(c, c): int(c in found) for c in NIH_CLASSES},
                   "No finding": int(found == ["No Finding"])} for n, found in nih_rows.items()]
    write_csv(folder / "image_labels_test.csv", label_rows, ["image_id", *cols])
    return ann


def test_vindr_and_coco_layouts_give_nih_figures(setting: dict, small_model: Path, data_dir: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for n in setting["names"]:
        (flat / n).symlink_to(data_dir / "images" / n)
    nih = _run(flat, setting["labels"], data_dir / "boxes.csv", small_model, tmp_path / "nih")
    assert nih["n_boxes"] == len(setting["ref"]) == 5 and nih["n_images"] == 8

    ann = _vindr_files(setting)
    vindr = _run(setting["nested"], ann, ann, small_model, tmp_path / "vindr")
    others = {name: _run(flat, setting["labels"], write(setting["tmp"], setting["ref"]), small_model, tmp_path / name)
              for name, write in (("coco", fx.write_coco), ("vinbigdata", fx.write_vinbigdata),
                                  ("chestxdet", fx.write_chestxdet), ("mscxr", fx.write_mscxr))}  # fmt: skip
    for name, report in (("vindr", vindr), *others.items()):
        for key in FIGURES:
            # A polygon or RLE region is scored as a mask and counted as one. Its case figures equal the box's; a
            # mask's chance and centre references read the box itself, the box path the case's box rounded to 0.01 px,
            # so a CAM-box IoU reference (and a verdict's difference from it) may move by under 1e-3
            # (tests/test_audit_regions_engine.py argues the bound).
            tol = 1e-3 if report["plausibility"].get("n_masks") else 1e-9
            if key == "plausibility":
                assert json_close(_without(report[key], "n_masks"), _without(nih[key], "n_masks"), tol=tol), (name, key)
                continue
            if key == "plausibility_reference":  # the inter-reader level says why it is missing, in its own words
                assert json_close(_without(report[key], "readers"), _without(nih[key], "readers"), tol=tol), (name, key)
                continue
            assert json_close(report[key], nih[key], tol=1e-9), (name, key)
    # NIH names no reader; the VinDr file names one (R1), so the reason differs: no image has two readers
    assert "names no reader" in nih["plausibility_reference"]["readers"]["reason"]
    assert "two or more readers" in vindr["plausibility_reference"]["readers"]["reason"]
    md = (tmp_path / "vindr" / "report.md").read_text()
    assert "linked into one folder" in md and "ground truth: annotations_test.csv (vindr): 8 images, 5 regions" in md
    assert "'No finding' means none of the model's labels; not scored" in md
    assert "differ between readers" not in md
    assert (tmp_path / "vindr" / "ground_truth" / "labels.csv").is_file()


#: CheXpert's columns that name an NIH class (through the shared vocabulary), and the NIH class each is scored as.
CHEXPERT_NIH = {"Cardiomegaly": "Cardiomegaly", "Edema": "Edema", "Consolidation": "Consolidation",
                "Pneumonia": "Pneumonia", "Atelectasis": "Atelectasis", "Pneumothorax": "Pneumothorax",
                "Pleural Effusion": "Effusion"}
#: The image made uncertain (-1) on one class: a boxed image (a Cardiomegaly box), positive for Cardiomegaly too, and
#: one of the teacher's images (so the paired comparison with it is checked as well).
UNSURE_IMAGE, UNSURE_CLASS = "00013125_000.png", "Effusion"


def _chexpert_of_nih(setting: dict) -> Path:
    """NIH's labels of the images as a CheXpert CSV (1.0 / 0.0 on the 7 columns naming NIH classes, the rest blank),
    with UNSURE_IMAGE's UNSURE_CLASS written -1.0."""
    from cxrdemo.datasets.chexpert import CHEXPERT_CLASSES

    found = {r["Image Index"]: r["Finding Labels"].split("|") for r in csv.DictReader(setting["labels"].open())}
    rows = []
    for name, labels in found.items():
        cells = {c: ("1.0" if nih in labels else "0.0") for c, nih in CHEXPERT_NIH.items()}
        if name == UNSURE_IMAGE:
            cells[next(c for c, nih in CHEXPERT_NIH.items() if nih == UNSURE_CLASS)] = "-1.0"
        rows.append({"Path": f"CheXpert-v1.0-small/valid/{name}", **{c: cells.get(c, "") for c in CHEXPERT_CLASSES}})
    return write_csv(setting["tmp"] / "chexpert-valid.csv", rows, ["Path", *CHEXPERT_CLASSES])


def _expected_auc(report_dir: Path, truth: dict[str, list[str]], classes: list[str], unsure: dict) -> dict:
    """scikit-learn's ``roc_auc_score`` by hand on each class's subset of the run's predictions: NIH's label of every
    image, but ``unsure`` ({(image, class): 1.0 / 0.0, or None: left out}); ``None`` without positives and negatives."""
    from sklearn.metrics import roc_auc_score

    probs = _predictions(report_dir / "predictions.csv")
    out = {}
    for c in classes:
        pairs = [(unsure.get((n, c), float(c in truth[n])), probs[n][NIH_CLASSES.index(c)]) for n in probs]
        y, s = zip(*[(t, p) for t, p in pairs if t is not None])
        out[c] = float(roc_auc_score(y, s)) if 0 < sum(y) < len(y) else None
    return out


def _predictions(path: Path) -> dict:
    """``{image: probabilities}`` of a predictions CSV (a run's ``predictions.csv``, the teacher's)."""
    from cxrdemo.audit.baseline import read_predictions

    return read_predictions(path, NIH_CLASSES)


def _sk(truth: dict[str, list[str]], probs: dict, names: list[str], c: str) -> float:
    """scikit-learn's AUC of class ``c`` on ``names`` (NIH's labels, ``probs``' scores)."""
    from sklearn.metrics import roc_auc_score

    k = NIH_CLASSES.index(c)
    return float(roc_auc_score([float(c in truth[n]) for n in names], [probs[n][k] for n in names]))


def test_uncertain_label_left_out_of_its_class_only(setting: dict, small_model: Path, data_dir: Path, tmp_path: Path) -> None:
    """CheXpert labels with one uncertain (image, class): under ``ignore`` the image is left out of that class's AUC
    only (its own AUC, its CI and the teacher comparison), counts for every other class and keeps its box; under
    ``positive`` / ``negative`` it counts as 1 / 0; the report counts it; NIH's own labels are untouched."""
    from cxrdemo.datasets.samples import read_label_csv

    flat = tmp_path / "flat"
    flat.mkdir()
    for n in setting["names"]:
        (flat / n).symlink_to(data_dir / "images" / n)
    truth = {n: list(r.labels) for n, r in read_label_csv(setting["labels"]).items()}
    stated = list(CHEXPERT_NIH.values())
    chexpert = _chexpert_of_nih(setting)

    nih = _run(flat, setting["labels"], data_dir / "boxes.csv", small_model, tmp_path / "nih")
    assert nih["skipped"]["uncertain_labels"] == {}  # a plain NIH label CSV: nothing uncertain, no new column
    assert "Uncertain (left out)" not in (tmp_path / "nih" / "report.md").read_text()
    assert nih["auc"] == pytest.approx(_expected_auc(tmp_path / "nih", truth, list(NIH_CLASSES), {}))

    teacher_rows = [r for r in csv.DictReader(TEACHER.open()) if r["Image Index"] in setting["names"]]
    teacher_csv = write_csv(tmp_path / "teacher.csv", teacher_rows)  # the teacher's rows of these images
    ignore = _run(flat, chexpert, data_dir / "boxes.csv", small_model, tmp_path / "ignore",
                  "--baseline-predictions", str(teacher_csv))
    expected = _expected_auc(tmp_path / "ignore", truth, stated, {(UNSURE_IMAGE, UNSURE_CLASS): None})
    assert ignore["auc"][UNSURE_CLASS] is not None and ignore["auc"] == pytest.approx(
        {c: expected.get(c) for c in NIH_CLASSES})  # the classes CheXpert does not state: no AUC
    for c in stated:  # the uncertain image still counts for every other class: the same AUC as NIH's own labels
        if c != UNSURE_CLASS:
            assert ignore["auc"][c] == pytest.approx(nih["auc"][c])
    # ... and keeps its box: every box is scored as with NIH's labels
    assert (ignore["n_images"], ignore["n_boxes"]) == (nih["n_images"], nih["n_boxes"]) == (8, 5)
    assert json_close(ignore["plausibility"], nih["plausibility"], tol=1e-9)
    assert ignore["skipped"]["uncertain_labels"] == {UNSURE_CLASS: 1}
    # the paired comparison with a teacher leaves the image out of that class only, too
    (base,) = ignore["baseline"]
    teacher = _predictions(teacher_csv)
    common = [n for n in setting["names"] if n in teacher]
    assert base["n_common"] == len(common) and UNSURE_IMAGE in common
    per = base["per_label"]
    assert per[UNSURE_CLASS]["auc_a"]["n"] == len(common) - 1 and per["Cardiomegaly"]["auc_a"]["n"] == len(common)
    mine = [n for n in common if n != UNSURE_IMAGE]
    assert per[UNSURE_CLASS]["auc_b"]["value"] == pytest.approx(_sk(truth, teacher, mine, UNSURE_CLASS), abs=1e-6)
    assert per[UNSURE_CLASS]["auc_b"]["value"] != pytest.approx(_sk(truth, teacher, common, UNSURE_CLASS))  # it tells
    assert per["Cardiomegaly"]["auc_b"]["value"] == pytest.approx(_sk(truth, teacher, common, "Cardiomegaly"), abs=1e-6)
    md = (tmp_path / "ignore" / "report.md").read_text()
    assert "| Label | Positives | Negatives | Uncertain (left out) | AUC | 95% CI |" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {UNSURE_CLASS} | "))
    assert row.startswith(f"| {UNSURE_CLASS} | 2 | 5 | 1 | ")
    assert ("- uncertain labels (-1), each image left out of that class's AUC only (it counts for every other class): "
            f"{UNSURE_CLASS} 1") in md  # under "Left out"
    assert ("policy 'ignore': each image left out of that class's AUC only (it counts for every other class and keeps "
            f"its regions): {UNSURE_CLASS} 1") in md  # the conversion's note

    for policy, value in (("positive", 1.0), ("negative", 0.0)):
        report = _run(flat, chexpert, data_dir / "boxes.csv", small_model, tmp_path / policy, "--uncertain", policy)
        expected = _expected_auc(tmp_path / policy, truth, stated, {(UNSURE_IMAGE, UNSURE_CLASS): value})
        assert report["auc"] == pytest.approx({c: expected.get(c) for c in NIH_CLASSES}), policy
        assert report["skipped"]["uncertain_labels"] == {} and report["n_boxes"] == 5
        md = (tmp_path / policy / "report.md").read_text()
        assert f"uncertain labels (-1) counted as {policy} (policy '{policy}'): {UNSURE_CLASS} 1" in md
        assert "Uncertain (left out)" not in md
        if policy == "positive":  # NIH's label of that image is positive: NIH's AUCs on the classes CheXpert states
            assert {c: report["auc"][c] for c in stated} == pytest.approx({c: nih["auc"][c] for c in stated})
