import numpy as np
import pytest

from cxrdemo.boxes import Box, iou, iou_matrix, validate_box
from cxrdemo.errors import BoxError


def test_iou_hand_computed():
    # 10x10 boxes overlapping in a 5x10 strip: 50 / (100 + 100 - 50)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    # contained: 4 / 100
    assert iou(Box(0, 0, 10, 10), Box(2, 2, 4, 4)) == pytest.approx(0.04)


def test_iou_degenerate_boxes_are_zero_not_nan():
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    assert iou((5, 5, 1, 1), (0, 0, 10, 10)) == 0.0  # reversed corners have no area


def test_iou_matrix_matches_scalar():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 100, (5, 2, 2)), axis=1).transpose(0, 2, 1).reshape(5, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 100, (4, 2, 2)), axis=1).transpose(0, 2, 1).reshape(4, 4)[:, [0, 2, 1, 3]]
    m = iou_matrix(a, b)
    for i in range(5):
        for j in range(4):
            assert m[i, j] == pytest.approx(iou(a[i], b[j]))
    assert ((m >= 0) & (m <= 1)).all()


def test_from_xywh_scaled_and_clipped():
    b = Box.from_xywh(100, 200, 50, 60, "Mass")
    assert b.xyxy == (100, 200, 150, 260)
    assert b.scaled(0.25, 0.25).xyxy == (25, 50, 37.5, 65)
    assert Box(-5, -5, 300, 20).clipped(256, 256).xyxy == (0, 0, 256, 20)


@pytest.mark.parametrize(
    "box, message",
    [
        (Box(50, 50, 10, 60), "wrong order"),
        (Box(10, 10, 10, 60), "wrong order"),
        (Box(300, 300, 400, 400), "outside"),
        (Box(float("nan"), 0, 10, 10), "non-finite"),
    ],
)
def test_validate_box_refuses_bad_boxes(box, message):
    with pytest.raises(BoxError, match=message):
        validate_box(box, 256, 256)


def test_validate_box_clips_partly_outside():
    assert validate_box(Box(-10, 20, 300, 40, "Mass"), 256, 256).xyxy == (0, 20, 256, 40)
