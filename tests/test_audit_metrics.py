"""cxrdemo.audit.maps: pointing game, energy in the box, Otsu and mask IoU, with known answers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cxrdemo.audit.maps import (
    MAP_METRICS,
    box_mask,
    energy_in_box,
    map_metrics,
    mask_iou,
    otsu_threshold,
    pointing_hit,
    resize_map,
)
from cxrdemo.boxes import Box


def peak_at(row: int, col: int, shape=(40, 50)) -> np.ndarray:
    h = np.zeros(shape, dtype=np.float32)
    h[row, col] = 1.0
    return h


def test_box_mask_uses_pixel_centres():
    assert box_mask((20, 20), Box(0, 0, 10, 10)).sum() == 100  # pixels 0..9, centres 0.5..9.5
    m = box_mask((20, 20), Box(2.5, 3.5, 5.5, 4.5))  # centres 2.5..5.5 in x (4 columns), 3.5..4.5 in y (2 rows)
    assert m.sum() == 8
    assert np.array_equal(np.argwhere(m.any(axis=0)).ravel(), [2, 3, 4, 5])
    assert np.array_equal(np.argwhere(m.any(axis=1)).ravel(), [3, 4])
    assert box_mask((20, 20), Box(2.6, 3.6, 5.4, 4.4)).sum() == 0  # no centre inside


def test_pointing_on_the_edge_is_inside_and_just_outside_is_not():
    box = Box(10, 10, 20.5, 20)
    assert pointing_hit(peak_at(15, 20), box)  # centre x = 20.5 = x2: on the edge, inside
    assert pointing_hit(peak_at(10, 10), box)  # centre (10.5, 10.5): inside
    assert pointing_hit(peak_at(19, 19), box)  # centre y = 19.5 <= 20
    assert not pointing_hit(peak_at(15, 21), box)  # centre x = 21.5: 1 px outside
    assert not pointing_hit(peak_at(20, 15), box)  # centre y = 20.5 > 20
    assert not pointing_hit(peak_at(9, 15), box)  # centre y = 9.5 < 10


def test_pointing_tolerance_grows_the_box():
    box = Box(10, 10, 20.5, 20)
    assert not pointing_hit(peak_at(15, 21), box, tolerance_px=0.99)
    assert pointing_hit(peak_at(15, 21), box, tolerance_px=1.0)  # 21.5 <= 20.5 + 1
    assert pointing_hit(peak_at(25, 15), box, tolerance_px=15)  # Zhang et al.'s 15 px
    assert not pointing_hit(peak_at(39, 15), box, tolerance_px=15)
    with pytest.raises(ValueError):
        pointing_hit(peak_at(1, 1), box, tolerance_px=-1)


def test_pointing_ties_take_the_first_maximum_in_row_major_order():
    h = np.zeros((40, 50), dtype=np.float32)
    h[5, 45] = 1.0  # first in row-major order, outside the box
    h[15, 15] = 1.0  # inside the box, later
    box = Box(10, 10, 20, 20)
    assert not pointing_hit(h, box)
    h[5, 45] = 0.0
    assert pointing_hit(h, box)


def test_energy_fraction_is_exact():
    h = np.zeros((10, 10))
    h[0:2, 0:5] = 1.0  # 10 px of 1 inside
    h[8:10, 5:10] = 0.5  # 10 px of 0.5 outside
    h[5, 5] = 2.5  # outside (mass 2.5)
    box = Box(0, 0, 5, 2)
    assert energy_in_box(h, box) == pytest.approx(10.0 / (10.0 + 5.0 + 2.5), abs=1e-12)
    assert energy_in_box(np.zeros((10, 10)), box) == 0.0
    assert energy_in_box(np.ones((10, 10)), Box(0, 0, 10, 10)) == 1.0
    assert energy_in_box(np.ones((10, 10)), Box(0, 0, 5, 10)) == pytest.approx(0.5)


def test_otsu_separates_a_bimodal_map():
    rng = np.random.default_rng(0)
    h = np.clip(rng.normal(0.2, 0.03, (60, 60)), 0, 1)
    h[10:30, 20:50] = np.clip(rng.normal(0.8, 0.03, (20, 30)), 0, 1)
    high = np.zeros_like(h, dtype=bool)
    high[10:30, 20:50] = True
    t = otsu_threshold(h)
    assert h[~high].max() < t <= h[high].min()
    assert np.array_equal(h >= t, high)
    assert mask_iou(h, Box(20, 10, 50, 30), t) == 1.0
    assert map_metrics(h, Box(20, 10, 50, 30))["mask_iou_otsu"] == 1.0
    assert map_metrics(h, Box(20, 10, 35, 30))["mask_iou_otsu"] == pytest.approx(0.5)


def test_otsu_of_a_constant_map_is_its_value():
    assert otsu_threshold(np.full((8, 8), 0.3)) == pytest.approx(0.3)
    assert otsu_threshold(np.zeros((8, 8))) == 0.0


def test_mask_iou_whole_and_half_box():
    h = np.zeros((40, 40), dtype=np.float32)
    h[10:20, 10:30] = 0.9
    assert mask_iou(h, Box(10, 10, 30, 20), 0.5) == 1.0
    assert mask_iou(h, Box(10, 10, 20, 20), 0.5) == pytest.approx(0.5)  # box = half the mask
    h2 = np.zeros((40, 40), dtype=np.float32)
    h2[10:20, 10:20] = 0.9
    assert mask_iou(h2, Box(10, 10, 30, 20), 0.5) == pytest.approx(0.5)  # mask = half the box
    assert mask_iou(h, Box(10, 10, 30, 20), 0.95) == 0.0  # empty mask
    assert mask_iou(np.zeros((40, 40)), Box(10, 10, 30, 20), 0.0) == 0.0  # zero pixels never in a mask


def test_map_metrics_keys_and_values():
    h = np.zeros((40, 40), dtype=np.float32)
    h[10:20, 10:30] = 0.6  # 0.6 * 255 = 153: in the 127 mask, not in the 180 one
    h[12:18, 12:28] = 1.0  # the core reaches 180
    h[15, 20] = 1.0
    box = Box(10, 10, 30, 20)
    out = map_metrics(h, box)
    assert tuple(out) == MAP_METRICS
    assert out["pointing_game"] == 1.0
    assert out["energy_in_box"] == 1.0
    assert out["mask_iou_127"] == 1.0
    assert out["mask_iou_180"] == pytest.approx(6 * 16 / 200)
    assert 0.0 < out["mask_iou_otsu"] <= 1.0
    assert map_metrics(h, Box(35, 35, 40, 40))["pointing_game"] == 0.0


def test_fixed_thresholds_compare_like_the_cam_box():
    h = np.zeros((10, 10), dtype=np.float32)
    h[0, 0] = np.float32(127 / 255)  # * 255 rounds to 127.0 in float32: in the mask, as in explain.cam_box
    h[0, 1] = 1.0
    out = map_metrics(h, Box(0, 0, 2, 1))
    assert out["mask_iou_127"] == 1.0
    assert out["mask_iou_180"] == pytest.approx(0.5)


def test_non_finite_values_read_as_zero_and_bad_shapes_refused():
    h = np.zeros((10, 10))
    h[3, 3] = 1.0
    h[0, 0] = np.nan
    assert pointing_hit(h, Box(3, 3, 4, 4))
    assert energy_in_box(h, Box(3, 3, 4, 4)) == 1.0
    with pytest.raises(ValueError):
        map_metrics(np.zeros(10), Box(0, 0, 1, 1))


def test_resize_map_to_original_pixels():
    h = np.zeros((4, 4), dtype=np.float32)
    h[:2, :2] = 1.0
    big = resize_map(h, width=80, height=40)
    assert big.shape == (40, 80) and big.min() >= 0.0 and big.max() <= 1.0
    assert pointing_hit(big, Box(0, 0, 40, 20))


def test_audit_light_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import cxrdemo.audit, cxrdemo.audit.maps, cxrdemo.audit.stats, cxrdemo.audit.baseline\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
