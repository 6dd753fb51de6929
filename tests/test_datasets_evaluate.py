"""``evaluate --labels/--boxes`` with ground truth in other layouts: the same NIH boxes and labels written as
VinDr-CXR files (nested image folder, VinDr's own class spellings), or the same boxes as a COCO, VinBigData,
ChestX-Det (one image's boxes as polygons: scored by their box) or MS-CXR file beside NIH's labels, give the same
report figures as NIH's own CSVs, to 1e-9 (the boxes come back within 1e-9 px and pass through the same
arithmetic; no IoU lies within 1e-9 of a threshold here, or the two runs could differ by one match)."""

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
from test_evaluate_audit import OTHERS, _labels, json_close, small_model  # noqa: F401 (the session fixture)

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


def _run(images: Path, labels: Path, boxes: Path, model: Path, out: Path) -> dict:
    argv = ["evaluate", "--images", str(images), "--labels", str(labels), "--boxes", str(boxes), "--weights", str(model),
            "--out", str(out), "--device", "cpu", "--quiet", "--batch-size", "4", "--workers", "0", "--bootstrap", "200",
            "--no-plots", "--no-gallery"]  # fmt: skip
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
