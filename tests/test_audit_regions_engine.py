"""The audit engine fed regions (boxes or masks, with readers) instead of NIH's box list, on the shared NIH images
with a small random model (plumbing and exact identities, not accuracy). Outputs go to pytest's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.audit.engine import AuditOptions, run_audit
from cxrdemo.audit.regions import sample_regions
from cxrdemo.boxes import Box
from cxrdemo.datasets.base import Region, box_mask
from cxrdemo.datasets.samples import load_samples

from conftest import DATA, calibrated_model_folder

SHIFT = (12, 6)  # reader 2's box: reader 1's (NIH's) moved 12 px right and 6 px down


@pytest.fixture(scope="module")
def setup(data_dir, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("regions-engine")
    model = calibrated_model_folder(tmp / "model", 64, batches=3)
    boxed = sorted({line.split(",")[0] for line in (DATA / "boxes.csv").read_text().splitlines()[1:]})
    found = load_samples(DATA / "images", DATA / "labels.csv", DATA / "boxes.csv", names=boxed)
    from PIL import Image

    sizes = {s.name: Image.open(s.path).size for s in found.samples}
    return {"model": model, "names": boxed, "samples": found.samples, "sizes": sizes, "tmp": tmp}


def _run(setup: dict, name: str, **extra):
    options = AuditOptions(
        images=DATA / "images", labels=DATA / "labels.csv", boxes=DATA / "boxes.csv", weights=str(setup["model"]),
        out=setup["tmp"] / name, names=setup["names"], device="cpu", batch_size=4, workers=0, n_resamples=200,
        plots=False, gallery=extra.pop("gallery", False), **extra,
    )  # fmt: skip
    result = run_audit(options)
    return result, json.loads((setup["tmp"] / name / "report.json").read_text())


@pytest.fixture(scope="module")
def nih_run(setup):
    return _run(setup, "nih")


def test_nih_boxes_given_as_regions_give_the_same_report(setup, nih_run):
    regions = {s.name: sample_regions(s, *setup["sizes"][s.name]) for s in setup["samples"]}
    result, doc = _run(setup, "as-regions", regions=regions)
    _, base = nih_run
    assert doc["plausibility"] == base["plausibility"]
    assert doc["plausibility_reference"] == base["plausibility_reference"]
    assert not doc["plausibility_reference"]["readers"]["available"]
    assert "names no reader" in doc["plausibility_reference"]["readers"]["reason"]
    assert all(c.region == "box" and c.n_readers == 1 for c in result.cases)
    from cxrdemo.webapp.audit_view import readers_summary

    page = "\n".join(readers_summary(result.plausibility_reference["readers"], result.plausibility["methods"]))
    assert "unavailable: the ground truth names no reader" in page


def test_nih_boxes_given_as_masks_score_as_the_boxes(setup, nih_run):
    """Every NIH box given as its rasterised mask (datasets.base.box_mask) scores exactly as the box: no NIH edge lies
    on a pixel centre, so the region path takes the box path's pixels (tests/test_audit_regions.py)."""
    regions = {}
    for s in setup["samples"]:
        w, h = setup["sizes"][s.name]
        regions[s.name] = [Region(s.name, b.label, box=b, mask_shape=(h, w), decode=lambda b=b, w=w, h=h: box_mask(b, h, w))
                           for b in s.boxes_in_pixels(w, h)]  # fmt: skip
    result, _ = _run(setup, "as-masks", regions=regions)
    base = {(c.image, c.label, c.method): c for c in nih_run[0].cases}
    assert len(result.cases) == len(base) > 0
    for c in result.cases:
        b = base[(c.image, c.label, c.method)]
        assert c.region == "mask" and b.region == "box"
        assert c.metrics == b.metrics and c.cam_iou == b.cam_iou and c.box == b.box
    ref_mask = result.plausibility_reference
    ref_box = nih_run[0].plausibility_reference
    # The box path's references read the case's box rounded to 0.01 px (CaseRow.box), the mask's the box itself:
    # the same pixels, but the CAM-box IoU moves by at most 4 edges x 0.005 px x the box's side / its area, under
    # 1e-3 for NIH's smallest box here (85 x 46 px: 4 * 0.005 * 85 / 3900 = 4e-4). Every other figure takes the same
    # pixels; the report rounds to 6 digits, and a sum over a window or over a mask may differ in the last bits, so
    # a value may move by one unit of the 6th digit.
    for name in ("uniform", "center"):
        for k, v in ref_box[name].items():
            got = ref_mask[name][k]
            tol = 1e-3 if k == "cam_iou" else 2e-6
            if isinstance(v, dict):
                assert got["value"] == pytest.approx(v["value"], abs=tol), (name, k)
            else:
                assert got == pytest.approx(v, abs=tol), (name, k)


def _two_readers(setup) -> tuple[dict, list[float]]:
    regions, expected = {}, []
    dx, dy = SHIFT
    for s in setup["samples"]:
        w, h = setup["sizes"][s.name]
        regs = []
        for b in s.boxes_in_pixels(w, h):
            moved = Box(b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy, b.label).clipped(w, h)
            regs += [Region(s.name, b.label, box=b, reader="r1"), Region(s.name, b.label, box=moved, reader="r2")]
            m1, m2 = box_mask(b, h, w), box_mask(moved, h, w)
            inter = int((m1 & m2).sum())
            expected.append(inter / (int(m1.sum()) + int(m2.sum()) - inter))
        regions[s.name] = regs
    return regions, expected


def test_two_readers_give_the_inter_reader_reference_and_a_verdict(setup):
    regions, expected = _two_readers(setup)
    result, doc = _run(setup, "two-readers", regions=regions, gallery=True)
    readers = doc["plausibility_reference"]["readers"]
    assert readers["available"] and readers["n_pairs"] == len(expected) == 11 and readers["reader_rule"] == "per_reader"
    # every image is one pair, so the bootstrap's mean over pairs is the plain mean of the exact IoUs
    assert readers["metrics"]["iou"]["overall"]["value"] == pytest.approx(float(np.mean(expected)), abs=1e-6)
    assert all(c.region == "mask" and c.n_readers == 2 for c in result.cases)
    verdict = doc["plausibility"]["methods"]["gradcam"]["verdict"]["readers"]
    assert verdict["available"] and verdict["n_pairs"] == 11
    assert "second radiologist" in verdict["line"]
    report = (setup["tmp"] / "two-readers" / "report.md").read_text()
    assert "Inter-reader agreement (a second radiologist)" in report and verdict["line"] in report
    assert "reader rule `per_reader`" in report
    thumbs = [c.thumbnail for c in result.cases if c.thumbnail]
    assert thumbs and all((setup["tmp"] / "two-readers" / t).is_file() for t in thumbs)
    gallery = (setup["tmp"] / "two-readers" / "gallery.html").read_text()
    assert "a second radiologist (inter-reader agreement)" in gallery and "second radiologist" in gallery.split("<ul>")[1]
    from cxrdemo.webapp.audit_view import readers_summary

    page = "\n".join(readers_summary(result.plausibility_reference["readers"], result.plausibility["methods"]))
    assert "**A second radiologist**" in page and "11 (image, class) pairs" in page and verdict["line"] in page
    import csv

    rows = list(csv.DictReader((setup["tmp"] / "two-readers" / "cases.csv").open()))
    assert rows and {r["region"] for r in rows} == {"mask"} and {r["n_readers"] for r in rows} == {"2"}


def test_union_rule_scores_one_truth_per_class_and_says_so(setup):
    regions, _ = _two_readers(setup)
    result, doc = _run(setup, "union", regions=regions, reader_rule="union")
    assert all(c.n_readers == 1 and c.region == "mask" for c in result.cases)
    assert doc["plausibility"]["reader_rule"] == "union"
    assert "union rule" in doc["plausibility"]["methods"]["gradcam"]["verdict"]["readers"]["line"]


def test_an_unknown_reader_rule_is_one_line(setup):
    from cxrdemo.errors import InputError

    with pytest.raises(InputError, match="per_reader, union"):
        _run(setup, "bad", reader_rule="mean")
