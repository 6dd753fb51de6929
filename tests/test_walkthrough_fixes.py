"""Smaller fixes from the new-user walkthrough (issue notes): the method tile's IoUs say which box they belong to,
the A/B table numbers two boxes of one class, and model B's errors name the "Model B source" box."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from cxrdemo.boxes import Box, iou
from cxrdemo.errors import WeightsError
from cxrdemo.render.film import numbered_labels
from cxrdemo.render.grid import tile_rows
from cxrdemo.results import CamResult, IouRow
from cxrdemo.sidebyside import MethodCell
from cxrdemo.webapp import side
from cxrdemo.webapp.models import ModelCache, model_key

HEATMAP = np.zeros((8, 8), dtype=np.float32)  # not read by the rows


def test_numbered_labels_number_only_repeated_classes() -> None:
    assert numbered_labels(["Atelectasis", "Nodule", "Atelectasis"]) == ["Atelectasis #1", "Nodule", "Atelectasis #2"]
    assert numbered_labels(["Pleural_Thickening"]) == ["Pleural Thickening"]


def test_method_tile_prints_the_iou_of_the_box_it_draws() -> None:
    """Target Effusion, ground truth Atelectasis: the drawn box is Effusion's; the first IoU printed is the drawn
    box's, the second is CLN's (the Atelectasis map's box), each saying which box it is."""
    drawn = Box(100, 100, 300, 300, "Effusion")
    truth = [Box(150, 150, 350, 350, "Atelectasis"), Box(100, 100, 300, 300, "Effusion")]
    cell = MethodCell("gradcam", "Grad-CAM", False, CamResult("gradcam", "Effusion", 127, HEATMAP, drawn),
                      (("Atelectasis", 0.5), ("Effusion", 1.0)))  # fmt: skip
    texts = [row.text for row in tile_rows(cell, truth)]
    expected = iou(drawn, truth[0])  # 150x150 overlap of two 200x200 boxes: 22500 / 57500
    assert f"Atelectasis: CAM IoU {expected:.2f} (the box drawn)" in texts
    assert "0.50 with the box of the Atelectasis map (CLN)" in texts
    assert "Effusion: CAM IoU 1.00" in texts  # its own class: one figure, no remark


def _analysis(ious: list[IouRow]) -> SimpleNamespace:
    return SimpleNamespace(model={"architecture": "x", "source": "s", "revision": "r"}, probabilities=[], cam=None, ious=ious, detection=None, boxes=[])


def test_ab_table_numbers_two_boxes_of_one_class() -> None:
    rows = [IouRow(Box(0, 0, 10, 10, "Atelectasis"), None, None, 0.1, 0.2), IouRow(Box(20, 20, 30, 30, "Atelectasis"), None, None, 0.3, 0.4)]
    comparison = SimpleNamespace(a=_analysis(rows), b=_analysis(rows), top_changed=False, differences=[])
    text = side.models_summary(comparison)
    assert "| Atelectasis #1: box IoU | 0.10 | 0.10 |" in text and "| Atelectasis #2: CAM IoU | 0.40 | 0.40 |" in text


def test_model_b_errors_name_the_model_b_box() -> None:
    def loader(source: str, device: str):
        raise WeightsError("owner/missing is not in the local Hub cache; pass --weights FOLDER")

    cache = ModelCache(capacity=1, loader=loader)
    key = model_key("owner/missing", "cpu")
    with pytest.raises(WeightsError) as caught:
        side.analyse_with(cache, key, None, None, None, "B")  # fails at the model load, before the radiograph is read
    assert str(caught.value) == "owner/missing is not in the local Hub cache; enter a model folder in Model B source"


# ------------------------------------------------------------------------- NIH's boxes stay NIH's after a drawing
def _as_drawn(box: Box, scale: float) -> Box:
    """``box`` as the drawing control gives it back: whole pixels of its display copy, then original pixels."""
    return Box(*(round(v * scale) / scale for v in box.xyxy), box.label)


def test_nih_box_from_the_drawing_control_is_nih_exactly(boxed_view) -> None:
    from cxrdemo.webapp import boxes_text

    radiograph = boxed_view.case.radiograph
    nih = boxes_text.truth_nih_boxes(radiograph)
    assert nih, "the test image must be one NIH boxed"
    scale = boxes_text.display_scale(radiograph)
    text = boxes_text.format_boxes_text([_as_drawn(b, scale) for b in nih])  # what the text box then holds
    snapped, all_nih = boxes_text.snap_to_nih(boxes_text.parse_boxes_text(text), radiograph)
    assert all_nih and snapped == nih
    mine = Box(10, 10, 60, 60, nih[0].label)  # one box of the user's own, well away from NIH's
    snapped, all_nih = boxes_text.snap_to_nih([*boxes_text.parse_boxes_text(text), mine], radiograph)
    assert not all_nih and snapped == [*nih, mine]


def test_drawing_one_box_keeps_nih_box_iou_and_source(cache, boxed_view) -> None:
    from cxrdemo.webapp import actions, boxes_text, review

    case = boxed_view.case
    assert case.truth_source == "NIH"
    radiograph = case.radiograph
    scale = boxes_text.display_scale(radiograph)
    nih = list(case.ground_truth.boxes)
    drawn = [_as_drawn(b, scale) for b in nih] + [Box(10, 10, 60, 60, nih[0].label)]
    after = actions.apply_truth(cache, case, boxes_text.format_boxes_text(drawn))
    assert after.case.truth_source == "user"
    before_rows, after_rows = boxed_view.case.analysis.ious, after.case.analysis.ious
    # the same NIH box, the same cached forward pass and CAM: the very same IoUs (exact equality is right)
    assert [(r.box_iou, r.cam_iou) for r in after_rows[: len(nih)]] == [(r.box_iou, r.cam_iou) for r in before_rows]
    sources = [row.ground_truth_source for row in review.review_rows(after.case, "")]
    assert sources == ["NIH"] * len(nih) + ["user"]
    again = actions.apply_truth(cache, case, boxes_text.format_boxes_text([_as_drawn(b, scale) for b in nih]))
    assert again.case.truth_source == "NIH"  # nothing but NIH's boxes: NIH's ground truth, not the user's
