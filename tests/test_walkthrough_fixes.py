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
    return SimpleNamespace(model={"architecture": "x", "source": "s", "revision": "r"}, probabilities=[], cam=None, ious=ious)


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
