"""Every CAM method on one cached forward pass, and two models on one radiograph."""

from __future__ import annotations

import numpy as np

from conftest import BOXED
from cxrdemo.cams import CAM_METHOD_KEYS
from cxrdemo.imaging import load_image
from cxrdemo.sidebyside import compare_methods, compare_models


def test_every_method_from_one_forward_pass(predictor, images_dir, monkeypatch):
    name = "00013125_000.png"
    inference = predictor.forward(load_image(images_dir / name))
    truth = predictor.ground_truth(inference)
    calls = []
    monkeypatch.setattr(predictor, "forward", lambda *a, **k: calls.append(1))
    cells = compare_methods(predictor, inference, truth, target=BOXED[name])
    assert not calls  # no network pass
    assert [c.method for c in cells] == list(CAM_METHOD_KEYS)
    for cell in cells:
        assert [label for label, _ in cell.ious] == [BOXED[name]]
        assert all(0.0 <= v <= 1.0 for _, v in cell.ious)
        doc = cell.to_json()
        assert doc["class_agnostic"] == (cell.method == "eigencam")
        assert (doc["target"] is None) == cell.class_agnostic
    eigen = next(c for c in cells if c.method == "eigencam")
    assert "class-agnostic" in eigen.caption and BOXED[name] not in eigen.caption.split("(")[1].split(")")[0]
    # the Grad-CAM cell's IoU is the analysis' CAM IoU for the same class and threshold
    analysis = predictor.assemble(inference, cells[0].cam, truth)
    assert np.isclose(analysis.ious[0].cam_iou, cells[0].ious[0][1])


def test_two_models_compared(predictor, images_dir):
    film = load_image(images_dir / "00000468_017.png")
    a = predictor.analyse(film)
    b = predictor.analyse(film)
    same = compare_models(a, b)
    assert not same.top_changed and all(abs(v) < 1e-6 for _, v in same.differences)
    b.probabilities = list(reversed(b.probabilities))
    b.probabilities = [type(p)(p.label, 1.0 - p.probability, p.threshold) for p in b.probabilities]
    other = compare_models(a, b)
    diffs = [abs(v) for _, v in other.differences]
    assert diffs == sorted(diffs, reverse=True)
    assert set(other.to_json()) == {"a", "b", "top_changed", "differences"}
