"""What the panels say and where: the ground truth's source (B1), static boxes (B2), the CAM method actually used
(B3), the disclaimer / provenance footer (B4), captions clear of the web page's buttons (B5); the package's shape.

Synthetic films and hand-made analyses (helpers from test_render); the strings a panel draws are recorded by
wrapping the drawing kit's ``text`` function, so the tests read what is on the pixels, not a parallel list.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cxrdemo import render
from cxrdemo.boxes import Box
from cxrdemo.provenance import DataSplits
from cxrdemo.render import chart, draw, panels as panel_mod
from cxrdemo.results import CamResult, IouRow
from test_render import CAM_BOX, CARDIO, H, W, analysis, film, heatmap

REPO = Path(__file__).resolve().parent.parent
TRAIN_NOTE = DataSplits(frozenset({"synthetic.png"}), frozenset()).note("synthetic.png")
VALIDATION_NOTE = DataSplits(frozenset(), frozenset({"synthetic.png"})).note("synthetic.png")


@pytest.fixture
def drawn(monkeypatch):
    """A list that collects every string the panels draw (through the kit's ``text``)."""
    strings: list[str] = []
    original = draw.text

    def recording(d, xy, string, *args, **kwargs):
        strings.append(string)
        return original(d, xy, string, *args, **kwargs)

    for module in (draw, panel_mod, chart):
        monkeypatch.setattr(module, "text", recording)
    return strings


def with_cam(a, method: str):
    a.cam = CamResult(method, "Cardiomegaly", 127, heatmap(), CAM_BOX)
    return a


# --------------------------------------------------------------------------------------- B1 truth source
@pytest.mark.parametrize("source, expected", [("NIH", "ground truth (radiologist)"), ("user", "ground truth (user)"), ("", "ground truth")])
def test_legend_names_the_ground_truths_source(drawn, source, expected) -> None:
    a = analysis()
    a.truth_source = source
    render.render_comparison(film(), a, size=600)
    assert expected in drawn
    if source != "NIH":
        assert not any("radiologist" in s for s in drawn)


# -------------------------------------------------------------------------------------- B2 static boxes
@pytest.mark.parametrize("truth", [True, False])
def test_static_boxes_are_called_the_per_class_prior(drawn, truth) -> None:
    a = analysis(truth=truth)
    a.boxes_static = True
    render.render_prediction(film(), a, size=600)
    assert render.STATIC_BOXES == "boxes: the per-class prior, not image-specific"
    assert render.STATIC_BOXES in drawn
    drawn.clear()
    render.render_comparison(film(), a, size=600)
    assert render.STATIC_BOXES in drawn
    rows = [r.text for r in panel_mod._comparison_rows(a)]
    model_row = next(i for i, r in enumerate(rows) if r.startswith(render.MODEL.name))
    assert rows[model_row + 1] == render.STATIC_BOXES  # right under the model-box key


def test_image_specific_boxes_are_not_called_the_prior(drawn) -> None:
    a = analysis()
    render.render_panels(film(), a, size=600)
    assert not any("prior" in s for s in drawn)
    a.boxes, a.ious, a.boxes_static = [], [], True  # no box drawn: nothing to qualify
    render.render_panels(film(), a, size=600)
    assert not any("prior" in s for s in drawn)


# ------------------------------------------------------------------------------------------ B3 CAM method
@pytest.mark.parametrize("method, name", [("gradcam", "Grad-CAM"), ("gradcam++", "Grad-CAM++"), ("layercam", "LayerCAM")])
def test_cam_panel_names_the_method_used(drawn, method, name) -> None:
    a = with_cam(analysis(), method)
    render.render_cam(film(), a, size=600)
    assert f"{name} \u00b7 Cardiomegaly (p 0.90)" in drawn
    assert render.panel_titles(a)["cam"] == f"(d) {name}"
    if method != "gradcam":
        assert not any("Grad-CAM " in s or s.startswith("Grad-CAM \u00b7") for s in drawn)


def test_class_agnostic_cam_is_never_of_a_class(drawn) -> None:
    for truth in (True, False):
        a = with_cam(analysis(truth=truth), "eigencam")
        render.render_panels(film(), a, size=600)
    assert "EigenCAM (class-agnostic: the same map for every class)" in drawn
    assert not any("EigenCAM of" in s or "EigenCAM \u00b7" in s for s in drawn)
    assert not any(s.startswith(render.CAM.name) and "same class" in s for s in drawn)
    assert render.panel_titles(a)["cam"] == "(d) EigenCAM"
    assert "CAM box: EigenCAM (class-agnostic)" in drawn  # panel (b) without ground truth
    assert "CAM box (EigenCAM, class-agnostic, t=127)" in drawn  # ...and with it


def test_panel_titles_without_cam_and_defaults() -> None:
    assert render.panel_titles(analysis(cam=False)) == render.PANEL_TITLES
    assert render.panel_titles()["cam"] == "(d) CAM"
    assert list(render.panel_titles()) == list(render.PANEL_NAMES)


def test_missing_cam_and_truth_hints_come_from_the_caller(drawn) -> None:
    a = analysis(truth=False, cam=False)
    render.render_panels(film(), a, size=600)
    assert "no ground truth for this image" in drawn and "no CAM was computed" in drawn
    assert not any("draw or type" in s or "pick a CAM" in s for s in drawn)
    drawn.clear()
    hints = render.Hints(no_truth="draw or type a box", no_cam="pick a CAM method to see where the model looked")
    render.render_panels(film(), a, size=600, hints=hints)
    assert "no ground truth for this image: draw or type a box" in drawn
    assert "pick a CAM method to see where the model looked" in drawn


# ---------------------------------------------------------------------------------------------- B4 footer
def test_footer_lines_disclaimer_and_provenance_note() -> None:
    a = analysis()
    assert render.footer_lines(a) == ["Research demo, not a diagnostic device."] == [render.DISCLAIMER]
    a.notes = ["ground truth scaled from 1024 px", TRAIN_NOTE]
    assert render.footer_lines(a) == [render.DISCLAIMER, TRAIN_NOTE]  # only the provenance note joins
    a.notes = [VALIDATION_NOTE]
    assert render.footer_lines(a) == [render.DISCLAIMER, VALIDATION_NOTE]
    assert render.render_panels(film(), a, size=300).footer == (render.DISCLAIMER, VALIDATION_NOTE)


def test_composite_carries_the_footer(drawn) -> None:
    a = analysis()
    panels = render.render_panels(film(), a, size=512)
    bare = render.composite(panels, footer_lines=[])
    drawn.clear()
    plain = render.composite(panels)
    assert drawn[-1] == render.DISCLAIMER
    assert plain.width == bare.width and plain.height > bare.height
    assert np.array_equal(np.asarray(plain)[: bare.height], np.asarray(bare))  # the strip is only added below
    strip = np.asarray(plain)[bare.height :]
    assert np.all(strip == draw.MUTED, axis=-1).sum() > 30  # the disclaimer's text
    a.notes = [TRAIN_NOTE]
    with_note = render.composite(render.render_panels(film(), a, size=512))
    assert with_note.height > plain.height
    assert any("training images" in s for s in drawn)  # the long note, wrapped to the width
    assert render.composite(replace(panels, footer=())).size == bare.size


def test_wrap_breaks_long_lines_to_the_width() -> None:
    lines = draw.wrap(TRAIN_NOTE, 12, 300)
    assert len(lines) > 1 and " ".join(lines) == " ".join(TRAIN_NOTE.split())
    assert all(draw.text_width(ln, 12) <= 300 for ln in lines)


# ------------------------------------------------------------------------------------- B5 buttons corner
def _top_right_analysis():
    """Boxes fill the top-left and both bottom corners, so the legend goes to the top right."""
    truth = Box(20, 20, 250, 180, "Cardiomegaly")
    model = Box(20, 230, 250, 380, "Cardiomegaly", 0.9)
    cam = Box(350, 230, 580, 380, "Cardiomegaly")
    a = analysis()
    a.boxes, a.cam.box = [model], cam
    a.ground_truth, a.ious = [truth], [IouRow(truth, model, cam, 0.1, 0.0)]
    a.truth_source = "NIH"
    return a


@pytest.mark.parametrize("size", [512, 600, 1024])
def test_comparison_legend_stays_clear_of_the_button_corner(size) -> None:
    img = np.asarray(render.render_comparison(film(value=90), _top_right_analysis(), size=size)).astype(int)
    h, w = img.shape[:2]
    k = size / 512
    zone_w, zone_h = round(56 * k), round(28 * k)
    assert (w, h) == (size, round(size * H / W))
    assert np.all(img[:zone_h, w - zone_w :] == 90), "something drawn under the fullscreen/download buttons"
    # The legend (dark backdrop) is in the top-right quarter, just below the buttons.
    dark = np.all(img < 40, axis=-1)
    dark[:, : round(300 * size / 600)] = False
    dark[round(200 * size / 600) :, :] = False
    ys, xs = np.nonzero(dark)
    assert len(ys) > 100
    assert ys.min() >= zone_h and ys.min() <= zone_h + draw.scale_for(size).margin
    assert xs.max() >= w - zone_w  # still right-aligned, under the buttons


def test_place_block_moves_below_the_kept_clear_corner() -> None:
    keep = (456, 0, 511, 27)
    # Only the top-right corner is free of things to avoid.
    avoid = [(0, 0, 200, 200), (0, 300, 511, 511)]
    spot = draw.place_block(200, 60, (512, 512), avoid, 6)
    assert spot[1] == 6 and spot[2] == 505  # without the corner to keep clear: the very top right
    spot = draw.place_block(200, 60, (512, 512), avoid, 6, keep_clear=keep)
    assert draw.overlap(spot, keep) == 0 and spot[1] == 28 + 3 and spot[2] == 505
    # A canvas too short to go below the corner: a corner that does not cover it wins, even if it hides more.
    spot = draw.place_block(200, 60, (512, 70), [], 4, keep_clear=keep)
    assert draw.overlap(spot, keep) == 0


def test_film_panel_captions_keep_the_corner_clear() -> None:
    """Panels (a) and (d): a box down the left half sends the caption to the top right, below the buttons."""
    left = Box(20, 20, 200, 380, "Cardiomegaly", 0.9)
    a = analysis(boxes=[left], truth=False)
    a.cam.box, a.boxes_static = left, True
    for img in (render.render_prediction(film(value=90), a, 512), render.render_cam(film(value=0), a, 512)):
        arr = np.asarray(img)
        corner = arr[:28, 512 - 56 :].reshape(-1, 3)
        assert len(np.unique(corner, axis=0)) == 1, "something drawn under the fullscreen/download buttons"
        below = arr[28:120, 512 - 56 :].reshape(-1, 3)
        assert len(np.unique(below, axis=0)) > 3  # ...and the caption right under them


# ---------------------------------------------------------------------------------------------- the shape
def test_render_never_imports_torch_or_explain() -> None:
    code = "import sys, cxrdemo.render, cxrdemo.render.files; assert 'torch' not in sys.modules and 'cxrdemo.explain' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_draw_kit_knows_nothing_of_radiology_or_the_ui() -> None:
    source = (REPO / "cxrdemo" / "render" / "draw.py").read_text(encoding="utf-8")
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any(isinstance(n, ast.ImportFrom) and n.level > 0 for n in imports), "draw.py imports from cxrdemo"
    lowered = source.lower()
    for word in ("radiolog", "ground truth", "cam", "x-ray", "gradio", "draw or type", "cxrdemo.results"):
        assert word not in lowered.replace("camera", ""), word


def test_modules_stay_small() -> None:
    for path in (REPO / "cxrdemo" / "render").glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 450, path.name


def test_public_names_other_modules_import() -> None:
    from cxrdemo.render import (  # noqa: F401
        DEFAULT_SIZE,
        BoxStyle,
        Panels,
        composite,
        display_size,
        render_cam,
        render_comparison,
        render_panels,
        render_prediction,
        render_probabilities,
    )

    assert DEFAULT_SIZE == 768 and CARDIO.label == "Cardiomegaly"
