"""Side by side on the single-case page (cxrdemo.webapp.side, cxrdemo.render.grid), without a browser: every CAM
method from the cached forward pass, and a second model beside the case."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from conftest import BOXED, REPO, WEBAPP_IMAGE
from cxrdemo.cams import CAM_METHOD_KEYS
from cxrdemo.errors import InputError

BOXED_IMAGE = WEBAPP_IMAGE  # NIH: one Atelectasis box
EMBEDDED = str(REPO / "weights")  # model B: the embedded EfficientNet-Lite0


@pytest.fixture(scope="module")
def case_view(boxed_view):
    """The small test model's view of the boxed NIH image (conftest's ``boxed_view``, with conftest's ``cache``)."""
    assert boxed_view.case.analysis.image == BOXED_IMAGE
    return boxed_view


def test_every_method_from_the_cached_forward_pass(cache, case_view, monkeypatch) -> None:
    from cxrdemo.webapp import side

    predictor = cache.get(case_view.case.key)
    calls = []
    monkeypatch.setattr(predictor, "forward", lambda *a, **k: calls.append(1))
    view = side.case_methods(cache, case_view.case)
    assert not calls  # CAMs only: no network pass
    assert [c.method for c in view.cells] == list(CAM_METHOD_KEYS) and len(view.tiles) == len(CAM_METHOD_KEYS)
    assert len({t.size for t in view.tiles}) == 1  # the tiles line up in a grid
    assert view.grid is None  # the page gets tiles, not the composed grid
    doc = view.doc
    assert set(doc) == {"image", "model", "target", "threshold", "ground_truth", "methods", "timings_ms"}
    assert doc["image"] == BOXED_IMAGE and doc["target"] == case_view.case.analysis.top.label and doc["threshold"] == 127
    assert [g["label"] for g in doc["ground_truth"]] == [BOXED[BOXED_IMAGE]]
    for cell in doc["methods"]:
        assert set(cell) == {"method", "name", "target", "class_agnostic", "threshold", "box", "iou"}
        assert [r["label"] for r in cell["iou"]] == ["Atelectasis"] and 0.0 <= cell["iou"][0]["cam_iou"] <= 1.0
    # Grad-CAM's IoU is the page's CAM IoU for the same case (same method, target and threshold)
    assert doc["methods"][0]["iou"][0]["cam_iou"] == case_view.json["iou"][0]["cam_iou"]
    eigen = next(c for c in doc["methods"] if c["method"] == "eigencam")
    assert eigen["class_agnostic"] and eigen["target"] is None


def test_no_case_yet_is_a_one_line_error(cache) -> None:
    from cxrdemo.webapp import side

    with pytest.raises(InputError, match="analyse a radiograph first"):
        side.case_methods(cache, None)
    with pytest.raises(InputError, match="analyse a radiograph first"):
        side.case_models(cache, None, EMBEDDED)


def test_api_methods_with_typed_truth_draws_the_grid(cache, model_dir: Path, images_dir: Path) -> None:
    from cxrdemo.render import GRID_COLUMNS, TILE_SIZE
    from cxrdemo.webapp import side
    from cxrdemo.webapp.boxes_text import parse_boxes_text
    from cxrdemo.webapp.state import Settings
    from cxrdemo.webapp.upload import read_upload

    truth = parse_boxes_text("100, 100, 300, 300, Nodule\n500, 500, 700, 800, Mass\n600, 300, 800, 500, Nodule")
    settings = Settings.from_controls(str(model_dir), "cpu", None, "Mass", 180)
    view = side.api_methods(cache, read_upload(images_dir / "00000002_000.png"), settings, truth)
    assert view.doc["target"] == "Mass" and view.doc["threshold"] == 180
    assert [r["label"] for r in view.doc["methods"][0]["iou"]] == ["Nodule", "Mass", "Nodule"]
    assert {"forward", "cams", "render"} <= set(view.doc["timings_ms"])
    grid = view.grid
    assert grid is not None and grid.width >= GRID_COLUMNS * TILE_SIZE and grid.height > 2 * TILE_SIZE


def test_second_model_beside_the_case(cache, case_view) -> None:
    from cxrdemo.webapp import side

    view = side.case_models(cache, case_view.case, EMBEDDED, "cpu")
    a, b = view.comparison.a, view.comparison.b
    assert a is case_view.case.analysis  # A is the case as the page shows it: not run again
    assert b.model["architecture"] == "efficientnet_lite0" and a.model["architecture"] == "mobilenet_v3_small"
    assert b.cam.method == a.cam.method and b.cam.threshold == a.cam.threshold
    assert [r.label for r in b.ious] == ["Atelectasis"]  # the same ground truth
    assert set(view.doc) == {"a", "b", "top_changed", "differences"}
    assert view.doc["top_changed"] == (a.top.label != b.top.label)
    diffs = [abs(d["b_minus_a"]) for d in view.doc["differences"]]
    assert diffs == sorted(diffs, reverse=True) and len(diffs) == 14
    assert len(view.panels) == 8 and [c for _, c in view.panels][:1] == ["A: (a) Prediction"]
    assert "Atelectasis: CAM IoU" in view.summary and "Top class changed" in view.summary
    assert view.rows is None and not view.notes
    same = side.case_models(cache, case_view.case, str(case_view.case.key.source), "cpu")
    assert same.notes and "same model" in same.notes[0] and not same.doc["top_changed"]


def test_model_b_without_the_target_class_is_named(cache, case_view) -> None:
    from dataclasses import replace

    from cxrdemo.cams import CamRequest
    from cxrdemo.webapp import side
    from cxrdemo.webapp.models import model_key

    request = replace(case_view.case.settings.cam, target="Tumour")
    with pytest.raises(InputError, match="model B has no class 'Tumour'"):
        side.analyse_with(cache, model_key(EMBEDDED, "cpu"), case_view.case.radiograph, request)
    assert CamRequest().target is None


def test_pictures_are_written_atomically_and_pruned(tmp_path: Path) -> None:
    import os
    import time

    from cxrdemo.webapp import side

    old = tmp_path / f"{side.FILE_PREFIX}old-0.jpg"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3 * 3600,) * 2)
    paths = side.write_pictures([Image.new("RGB", (40, 30), (200, 0, 0))] * 2, tmp_path)
    assert len(paths) == 2 and not old.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with Image.open(paths[0]) as img:
        assert img.format == "JPEG" and img.size == (40, 30)
