"""Predict on real shared radiographs: ranked probabilities, boxes in original pixels, NIH ground truth, IoUs."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import BOXED

from cxrdemo.cams import CamRequest
from cxrdemo.errors import BoxError, InputError
from cxrdemo.imaging import load_image
from cxrdemo.datasets.truth import nih_boxes, nih_key, read_box_csv


@pytest.mark.parametrize("name", sorted(BOXED))
def test_analyse_real_boxed_images(predictor, images_dir, name):
    radiograph = load_image(images_dir / name)
    a = predictor.analyse(radiograph, cam_method="gradcam")
    probs = [p.probability for p in a.probabilities]
    assert probs == sorted(probs, reverse=True) and len(probs) == 14
    assert all(0.0 <= p <= 1.0 for p in probs)
    for b in a.boxes:
        assert 0 <= b.x1 < b.x2 <= a.width and 0 <= b.y1 < b.y2 <= a.height
    assert [g.label for g in a.ground_truth] and all(g.label == BOXED[name] for g in a.ground_truth)
    assert len(a.ious) == len(a.ground_truth)
    for row in a.ious:
        assert 0.0 <= row.box_iou <= 1.0 and 0.0 <= row.cam_iou <= 1.0
        assert row.box.label == row.label
    assert a.cam is not None and a.cam.target == a.top.label
    assert set(a.timings_ms) >= {"preprocess", "forward", "cam", "compare"}
    doc = a.to_json()
    assert list(doc) == ["image", "model", "probabilities", "boxes", "cam", "ground_truth", "iou", "timings_ms"]


def test_nih_boxes_are_scaled_for_256px_copies(predictor, images_dir):
    full = load_image(images_dir / "00013125_000.png")
    with Image.open(images_dir / "00013125_000.png") as img:
        buf = io.BytesIO()
        img.convert("L").resize((256, 256)).save(buf, format="PNG")
    small = load_image(buf.getvalue(), name="00013125_000.png")
    a_full = predictor.analyse(full, cam_method=None)
    a_small = predictor.analyse(small, cam_method=None)
    assert np.allclose(np.array(a_small.ground_truth[0].xyxy) * 4, a_full.ground_truth[0].xyxy, atol=1e-6)
    assert any("scaled from 1024x1024" in n for n in a_small.notes)
    assert a_small.ious[0].cam_iou is None  # no CAM asked for


def test_box_list_parsing_and_multiple_boxes_per_image():
    index = read_box_csv(__import__("cxrdemo.datasets.truth", fromlist=["NIH_BOX_LIST"]).NIH_BOX_LIST)
    assert sum(len(v) for v in index.values()) == 984 and len(index) == 880
    multi = [k for k, v in index.items() if len(v) > 1]
    assert len(multi) == 93 and max(len(index[k]) for k in multi) == 4
    assert "Infiltrate" not in {b.label for v in index.values() for b in v}
    assert nih_key("/tmp/gradio/abc/00013118_008.png") == "00013118_008.png" and nih_key("scan.png") is None
    boxes = nih_boxes(multi[0], 1024, 1024)
    assert len(boxes) == len(index[multi[0]])


def test_user_boxes_validated_and_compared(predictor, images_dir):
    radiograph = load_image(images_dir / "00000001_000.png")
    a = predictor.analyse(radiograph, truth_boxes=[(100, 100, 400, 500, "Cardiomegaly"), {"label": "Infiltrate", "xyxy": [-20, 0, 50, 60]}])
    assert [g.label for g in a.ground_truth] == ["Cardiomegaly", "Infiltration"]
    assert a.ground_truth[1].x1 == 0  # clipped
    assert all(0 <= r.box_iou <= 1 for r in a.ious)
    with pytest.raises(BoxError, match="wrong order"):
        predictor.analyse(radiograph, truth_boxes=[(400, 100, 100, 500, "Mass")])
    with pytest.raises(BoxError, match="not one of the model's classes"):
        predictor.analyse(radiograph, truth_boxes=[(1, 1, 50, 50, "Tumour")])


def test_cam_reuses_inference_and_threshold_changes_box(predictor, images_dir):
    inference = predictor.forward(load_image(images_dir / "00022084_000.png"))
    c127 = predictor.cam(inference, CamRequest("gradcam", "Pneumonia", 127))
    c180 = predictor.cam(inference, CamRequest("gradcam", "Pneumonia", 180))
    assert np.array_equal(c127.heatmap, c180.heatmap)
    if c180.box is not None:
        assert c127.box is not None and c180.box.area <= c127.box.area
    with pytest.raises(InputError, match="unknown class"):
        predictor.cam(inference, CamRequest("gradcam", "Tumour", 127))


def test_concurrent_predictions_equal_serial(predictor, images_dir):
    names = ["00013125_000.png", "00022084_000.png", "00000468_017.png", "00013911_000.png"]
    radiographs = [load_image(images_dir / n) for n in names]
    serial = [predictor.analyse(r, cam_method="gradcam++") for r in radiographs]
    results: dict[int, object] = {}

    def work(i: int) -> None:
        results[i] = predictor.analyse(radiographs[i % 4], cam_method="gradcam++")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        got, ref = results[i], serial[i % 4]
        assert [p.probability for p in got.probabilities] == pytest.approx([p.probability for p in ref.probabilities], abs=1e-6)
        assert np.allclose(got.cam.heatmap, ref.cam.heatmap, atol=1e-5)
        assert got.cam.box == ref.cam.box
    assert all(not m._forward_hooks for m in predictor.model.modules())
