"""Ground truth as regions (boxes or masks, with readers): the region path of cxrdemo.audit.maps, cheXlocalize's
rules, the reader rules, inter-reader agreement and its verdict. Numpy only; no model (the engine's side is
tests/test_audit_regions_engine.py)."""

from __future__ import annotations

import csv
import gzip
import io
import math

import numpy as np
import pytest

from cxrdemo.audit.interreader import reader_lines, reader_reference, reader_verdict
from cxrdemo.audit.maps import (
    _inside,
    chexlocalize_hit,
    chexlocalize_iou,
    energy_in_mask,
    map_metrics,
    mask_metrics,
    pointing_hit,
    pointing_hit_mask,
)
from cxrdemo.audit.reference import ReferenceMaps, mask_fraction
from cxrdemo.audit.regions import (
    Truth,
    centre_pixel,
    check_rule,
    group_truths,
    reader_agreement,
    sample_regions,
    union_mask,
)
from cxrdemo.audit.result import CaseRow
from cxrdemo.boxes import Box
from cxrdemo.datasets.base import Region, box_mask
from cxrdemo.datasets.samples import Sample

from conftest import DATA


def box_region(box: Box, reader: str | None = None, image: str = "a.png") -> Region:
    return Region(image, box.label, box=box, reader=reader)


def mask_region(mask: np.ndarray, label: str, reader: str | None = None, image: str = "a.png") -> Region:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1), label)
    return Region(image, label, box=box, reader=reader, mask_shape=mask.shape, decode=lambda m=mask: m)


def random_map(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


# ------------------------------------------------------------------------------------------- the region path
@pytest.mark.parametrize("tolerance", [0.0, 3.0, 2.7])
def test_the_same_region_as_a_box_or_as_a_mask_gives_identical_figures(tolerance):
    box = Box(10.3, 7.9, 31.2, 25.0, "Nodule")
    h, w = 40, 50
    as_box = box_region(box)
    as_mask = mask_region(box_mask(box, h, w), "Nodule")
    for seed in range(5):
        heat = random_map((h, w), seed)
        a = mask_metrics(heat, as_box.mask(h, w), tolerance)
        b = mask_metrics(heat, as_mask.mask(h, w), tolerance)
        assert a == b  # exact: both go through the same mask


def test_box_path_and_region_path_agree_off_pixel_centres_and_differ_by_one_column_on_them():
    h, w = 40, 50
    heat = random_map((h, w), 3)
    off = Box(10.3, 7.9, 31.2, 25.0)  # no edge on a pixel centre: both rules take the same pixels
    assert map_metrics(heat, off) == mask_metrics(heat, box_mask(off, h, w))
    on = Box(10.0, 8.0, 30.5, 25.0)  # x2 = 30.5 is the centre of column 30: closed takes it, half-open does not
    from cxrdemo.audit.maps import box_mask as closed_mask

    diff = closed_mask((h, w), on) ^ box_mask(on, h, w)
    assert np.array_equal(np.flatnonzero(diff.any(axis=0)), [30]) and int(diff.sum()) == 17  # rows 8..24


def test_no_nih_box_has_an_edge_on_a_pixel_centre_so_both_paths_take_the_same_pixels(data_dir):
    """NIH's 984 boxes as the audit scales them (normalised by 1024, then to the image's size): at 1024 and 256 px
    every box's closed-rule pixels (the box path) equal its half-open ones (Region.mask), so today's box figures and
    the region path's agree exactly on NIH."""
    text = gzip.open(DATA / "BBox_List_2017.csv.gz", "rt").read()
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert len(rows) == 984
    boxes = [Sample("x.png", DATA, (), "p", (Box(float(x) / 1024, float(y) / 1024, (float(x) + float(bw)) / 1024,
                                                 (float(y) + float(bh)) / 1024, r[1]).clipped(1.0, 1.0),))
             for r in rows for x, y, bw, bh in [r[2:6]]]  # fmt: skip
    for side in (1024, 256):
        centres = np.arange(side) + 0.5
        for s in boxes:
            (b,) = s.boxes_in_pixels(side, side)
            closed = (_inside(side, b.x1, b.x2), _inside(side, b.y1, b.y2))
            half = ((centres >= b.x1) & (centres < b.x2), (centres >= b.y1) & (centres < b.y2))
            assert np.array_equal(closed[0], half[0]) and np.array_equal(closed[1], half[1]), (side, b)


def test_real_nih_boxes_give_the_same_figures_on_both_paths(data_dir):
    from cxrdemo.datasets.samples import load_samples

    found = load_samples(DATA / "images", DATA / "labels.csv", DATA / "boxes.csv")
    boxed = [s for s in found.samples if s.boxes][:4]
    assert boxed
    for k, s in enumerate(boxed):
        heat = random_map((1024, 1024), k)
        for region in sample_regions(s, 1024, 1024):
            assert region.reader is None and not region.is_mask
            assert map_metrics(heat, region.box, 5.0) == mask_metrics(heat, region.mask(1024, 1024), 5.0)


def test_pointing_tolerance_on_a_mask_is_the_grown_box_for_a_box():
    box = Box(10.3, 7.9, 31.2, 25.0)
    h, w = 40, 50
    mask = box_mask(box, h, w)
    for t in (1, 2, 4):
        grown = box_mask(Box(box.x1 - t, box.y1 - t, box.x2 + t, box.y2 + t), h, w)
        for r in range(h):
            for c in range(w):
                heat = np.zeros((h, w), dtype=np.float32)
                heat[r, c] = 1.0
                assert pointing_hit_mask(heat, mask, t) == bool(grown[r, c])
                assert pointing_hit_mask(heat, mask, t) == pointing_hit(heat, box, t)  # no edge on a centre


def test_mask_metrics_known_values_on_an_l_shaped_mask():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:8, 2:4] = True
    mask[6:8, 4:8] = True  # an L of 12 + 8 = 20 pixels
    heat = np.zeros((10, 10), dtype=np.float32)
    heat[6:8, 2:8] = 1.0  # the L's foot (12 px) and nothing else
    heat[0, 0] = 0.5  # mass outside
    out = mask_metrics(heat, mask)
    assert out["pointing_game"] == 1.0  # the first maximum (6, 2) is in the L
    assert out["energy_in_box"] == pytest.approx(12 / 12.5, abs=1e-12)
    assert out["mask_iou_180"] == pytest.approx(12 / 20)  # {>= 180/255} = the foot; IoU 12 / 20
    assert energy_in_mask(heat, mask) == out["energy_in_box"]
    with pytest.raises(ValueError, match="shape"):
        mask_metrics(heat, mask[:5])


def test_chexlocalize_rules_for_empty_masks_ties_and_negative_images():
    gt = np.zeros((6, 6), dtype=bool)
    gt[1:3, 1:3] = True
    pred = np.zeros_like(gt)
    assert math.isnan(chexlocalize_iou(pred, gt))  # true_pos_only: empty prediction left out
    assert chexlocalize_iou(pred, gt, true_pos_only=False) == 0.0
    assert math.isnan(chexlocalize_iou(pred, np.zeros_like(gt), true_pos_only=False))  # both empty
    pred[1:3, 1:4] = True
    assert chexlocalize_iou(pred, gt) == pytest.approx(4 / 6)
    tie = np.zeros((6, 6), dtype=np.float32)
    tie[1, 1] = tie[5, 5] = 1.0  # two maxima: the first in row-major order (1, 1) counts
    assert chexlocalize_hit(tie, gt) == 1.0
    tie2 = np.zeros((6, 6), dtype=np.float32)
    tie2[0, 5] = tie2[2, 2] = 1.0  # the first maximum (0, 5) is outside
    assert chexlocalize_hit(tie2, gt) == 0.0
    assert math.isnan(chexlocalize_hit(tie, np.zeros_like(gt)))  # a negative image is left out of the hit rate


# ------------------------------------------------------------------------------------------------ the rules
def test_reader_rules_group_regions_per_class_and_reader():
    a1, a2 = Box(0, 0, 10, 10, "Mass"), Box(20, 20, 30, 30, "Mass")
    b1 = Box(2, 2, 12, 12, "Mass")
    regions = [box_region(a1, "r1"), box_region(Box(5, 5, 8, 8, "Other"), "r1"), box_region(a2, "r1"), box_region(b1, "r2")]
    (per,) = group_truths(regions, ["Mass"], "per_reader")
    assert per.readers == ("r1", "r2") and [len(r) for r in per.regions] == [2, 1] and per.index == 0
    assert per.single_box is None
    m1, m2 = per.masks(40, 40)
    assert int(m1.sum()) == 200 and int(m2.sum()) == 100
    (uni,) = group_truths(regions, ["Mass"], "union")
    assert uni.readers == (None,) and int(uni.masks(40, 40)[0].sum()) == int((m1 | m2).sum())
    (one,) = group_truths([box_region(a1)], ["Mass"], "per_reader")
    assert one.single_box == a1  # one box of one reader: the box path
    assert group_truths(regions, ["Effusion"]) == []
    with pytest.raises(ValueError, match="per_reader, union"):
        check_rule("mean")


def test_nih_sample_boxes_enter_as_regions_without_reader():
    s = Sample("x.png", DATA, ("Mass",), "p", (Box(0.25, 0.5, 0.5, 0.75, "Mass"),))
    (r,) = sample_regions(s, 1024, 512)
    assert r.reader is None and r.box.xyxy == (256.0, 256.0, 512.0, 384.0) and r.label == "Mass"


# ------------------------------------------------------------------------------------------- agreement
def test_reader_agreement_of_two_shifted_boxes_is_known_exactly():
    h, w = 60, 60
    a = box_mask(Box(10, 10, 30, 30), h, w)  # 20 x 20
    b = box_mask(Box(15, 10, 35, 30), h, w)  # shifted 5 px right
    out = reader_agreement([a, b])
    assert out["iou"] == pytest.approx(15 * 20 / (25 * 20))  # 0.6
    assert out["energy_in_box"] == pytest.approx(0.75)  # 300 of 400 either way
    assert out["pointing_game"] == 1.0  # each centre lies in the other's box
    c = box_mask(Box(40, 40, 50, 50), h, w)  # disjoint
    out3 = reader_agreement([a, b, c])
    assert out3["iou"] == pytest.approx((0.6 + 0 + 0) / 3) and out3["n_readers"] == 3.0
    assert out3["pointing_game"] == pytest.approx(2 / 6)
    assert reader_agreement([a]) is None
    assert centre_pixel(a) == (20, 20)  # centre of mass 20.0 -> the pixel whose centre is 20.5 is (20, 20)


def test_reader_agreement_from_real_nih_boxes_and_a_known_shift(data_dir):
    """Reader 1 = an NIH box, reader 2 = the same box shifted by 17 px right and 9 px down: in whole pixels the
    IoU is (nx - 17)(ny - 9) / (2 nx ny - (nx - 17)(ny - 9)) exactly."""
    from cxrdemo.datasets.nih import read_box_csv

    boxes = read_box_csv(DATA / "boxes.csv")
    name, (box, *_) = next(iter(sorted(boxes.items())))
    h = w = 1024
    r1 = Region(name, box.label, box=box, reader="r1")
    shifted = Box(box.x1 + 17, box.y1 + 9, box.x2 + 17, box.y2 + 9, box.label)
    r2 = Region(name, box.label, box=shifted, reader="r2")
    (truth,) = group_truths([r1, r2], [box.label], "per_reader")
    m1, m2 = truth.masks(h, w)
    nx, ny = int(m1.any(axis=0).sum()), int(m1.any(axis=1).sum())
    assert int(m2.sum()) == nx * ny  # a whole-pixel shift keeps the pixel count
    inter = (nx - 17) * (ny - 9)
    out = reader_agreement([m1, m2])
    assert out["iou"] == inter / (2 * nx * ny - inter)
    assert out["energy_in_box"] == inter / (nx * ny)


def _case(image: str, label: str, value: float, method: str = "gradcam") -> CaseRow:
    metrics = {"pointing_game": value, "energy_in_box": value, "mask_iou_otsu": value, "mask_iou_127": value, "mask_iou_180": value}
    return CaseRow(image, 64, 64, label, [0, 0, 10, 10], 0, 0.5, None, 0.0, method, 0.0, metrics, region="mask", n_readers=2)


def test_inter_reader_reference_and_verdict_as_well_as_below_and_unavailable():
    agreed = [(f"i{k}.png", "Mass", {"pointing_game": 1.0, "energy_in_box": 0.5, "iou": 0.4, "n_readers": 2.0}) for k in range(12)]
    doc = reader_reference(agreed, "per_reader", 200, 0)
    assert doc["available"] and doc["n_pairs"] == 12 and doc["n_images"] == 12
    assert doc["metrics"]["iou"]["overall"]["value"] == pytest.approx(0.4)
    assert doc["metrics"]["iou"]["per_class"]["Mass"]["n"] == 12
    # a map scoring exactly what the readers score: difference 0 [0, 0], "as well as a second radiologist"
    same = [CaseRow(**{**_case(a[0], "Mass", 0.0).__dict__, "metrics": {"pointing_game": 1.0, "energy_in_box": 0.5,
                "mask_iou_otsu": 0.4, "mask_iou_127": 0.0, "mask_iou_180": 0.0}}) for a in agreed]  # fmt: skip
    v = reader_verdict("gradcam", same, agreed, "per_reader", 200, 0)
    assert all(e["verdict"] == "not distinguishable" for e in v["against"].values())
    assert "as well as a second radiologist" in v["line"]
    # a map far below on every pair
    low = [_case(a[0], "Mass", 0.0) for a in agreed]
    v = reader_verdict("gradcam", low, agreed, "union", 200, 0)
    assert v["against"]["mask_iou_otsu"]["verdict"] == "below"
    assert v["against"]["mask_iou_otsu"]["difference"]["value"] == pytest.approx(-0.4)
    assert "below a second radiologist" in v["line"] and "union rule" in v["line"]
    lines = "\n".join(reader_lines(doc, {"gradcam": {"verdict": {"readers": v}}}))
    assert "Inter-reader agreement" in lines and "| Mass |" in lines and "below a second radiologist" in lines
    # too few images: a value, no interval, no verdict
    few = reader_verdict("gradcam", low[:3], agreed[:3], "per_reader", 200, 0)
    assert few["against"]["pointing_game"]["verdict"] == "too few images"
    # unavailable, with the reason
    none = reader_reference([], "per_reader", 200, 0, reader_ids=0)
    assert not none["available"] and "names no reader" in none["reason"]
    assert "no two radiologists" in "\n".join(reader_lines(none, {}))
    assert "two or more readers" in reader_reference([], "per_reader", 200, 0, reader_ids=3)["reason"]
    assert not reader_verdict("gradcam", low, [], "per_reader", 200, 0)["available"]


def test_reference_maps_on_a_box_mask_equal_the_box_reference():
    """The reference values of a mask case (computed with the case) equal the box path's for the box's mask."""
    from cxrdemo.audit.reference import reference_values

    box = Box(100.3, 200.7, 400.2, 500.9, "Mass")
    w = h = 1024
    case = CaseRow("a.png", w, h, "Mass", list(box.xyxy), 0, 0.5, None, 0.0, "gradcam", 0.0, {})
    from_box = reference_values([case], 64, 127, 4.0, seed=3)
    refs = ReferenceMaps(64, 127, seed=3)
    from_mask = refs.values([box_mask(box, h, w)], [box], 4.0)
    for name in ("uniform", "center"):
        for k, v in from_mask[name].items():
            assert v == pytest.approx(from_box[name][0][k], abs=1e-12), (name, k)
    assert mask_fraction(box_mask(box, h, w)) == pytest.approx(300 * 300 / (1024 * 1024))


def test_union_mask_and_truth_helpers():
    m = np.zeros((8, 8), dtype=bool)
    m[0:2, 0:2] = True
    regions = [mask_region(m, "Mass", "r1"), box_region(Box(4, 4, 6, 6, "Mass"), "r1")]
    assert int(union_mask(regions, 8, 8).sum()) == 8
    t = Truth("Mass", ("r1",), (tuple(regions),), 0)
    assert t.boxes()[0].xyxy == (0.0, 0.0, 6.0, 6.0)


def test_gallery_draws_a_mask_truth_as_its_outline_in_the_truth_colour():
    from cxrdemo.render.casepicture import mask_outline, render_case_picture
    from cxrdemo.render.film import TRUTH

    size = 200
    film = np.full((size, size), 60, dtype=np.uint8)
    mask = np.zeros((size, size), dtype=bool)
    mask[40:160, 40:80] = True
    mask[120:160, 80:160] = True  # an L: its bounding box corner (45, 155) region is not in the mask
    outline = mask_outline(mask, (size, size), 2)
    assert outline[40, 60] and outline[159, 120] and not outline[100, 60]  # the edge, not the inside
    assert not outline[50, 150]  # the bounding box's empty corner
    heat = np.zeros((16, 16), dtype=np.float32)
    truth = Box(40, 40, 160, 160, "Mass")
    with_mask = np.asarray(render_case_picture(film, heat, size, size, truth, None, None, [mask]))
    with_box = np.asarray(render_case_picture(film, heat, size, size, truth, None, None))
    left_mask, left_box = with_mask[:, :size], with_box[:, :size]
    green = np.all(left_mask == TRUTH.colour, axis=-1)
    assert green[outline].all() and int(green.sum()) == int(outline.sum())  # the outline, and only it
    assert np.all(left_box[34:47, 155] == TRUTH.colour, axis=-1).any()  # the box's top edge (y = 40) is drawn there
    assert not green[34:47, 155].any()  # with the mask, no box is drawn over its empty corner
