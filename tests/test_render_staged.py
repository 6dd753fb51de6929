"""The panels drawn in stages (:class:`cxrdemo.render.PanelDrawing`: the film view made while the network runs) are
the panels :func:`cxrdemo.render.render_panels` draws from the finished analysis, pixel for pixel, on every path:
the worker thread, no worker (one core), a frame other than the one announced, and an error in the film view.

Exact equality is the right check: both paths run the same drawing functions on the same inputs; only the thread
that resizes the film differs, and OpenCV's resize gives the same bytes on any thread.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cxrdemo import render
from cxrdemo.boxes import Box
from cxrdemo.imaging import Radiograph
from cxrdemo.render import PanelDrawing, staged

from test_render import analysis, film

REGION = Box(100, 50, 500, 350, "model input")


def _gradient_film(width: int = 600, height: int = 400) -> Radiograph:
    """A film whose every row and column differs, so a resize done differently would show."""
    y, x = np.mgrid[0:height, 0:width]
    return Radiograph(((x * 7 + y * 3) % 256).astype(np.uint8), "synthetic.png", "png")


def _same(a: render.Panels, b: render.Panels) -> None:
    for name in render.PANEL_NAMES:
        assert np.array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name))), name
    assert (a.title, a.footer) == (b.title, b.footer)


CASES = {
    "truth and CAM": analysis(),
    "no ground truth": analysis(truth=False),
    "no CAM": analysis(cam=False),
    "centre crop": replace(analysis(), model_region=REGION),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("size", [256, 640, 768])
def test_staged_panels_equal_the_panels_of_the_finished_analysis(name: str, size: int) -> None:
    a, rad = CASES[name], _gradient_film()
    drawing = PanelDrawing(rad, size, model_region=a.model_region)
    _same(drawing.finish(a), render.render_panels(rad, a, size=size))


def test_without_a_worker_the_panels_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    a, rad = CASES["centre crop"], _gradient_film()
    threaded = PanelDrawing(rad, 512, model_region=REGION).finish(a)
    monkeypatch.setattr(staged, "_view_pool", lambda: None)  # a one-core machine
    _same(PanelDrawing(rad, 512, model_region=REGION).finish(a), threaded)


def test_an_analysis_of_another_frame_gets_its_own_view() -> None:
    """Announced: the whole film; the analysis says the model saw a crop: the dimmed border must still show."""
    a, rad = CASES["centre crop"], _gradient_film()
    panels = PanelDrawing(rad, 600, model_region=None).finish(a)
    _same(panels, render.render_panels(rad, a, size=600))
    plain = render.render_panels(rad, replace(a, model_region=None), size=600)
    assert not np.array_equal(np.asarray(panels.prediction), np.asarray(plain.prediction))


@pytest.mark.parametrize("worker", [True, False])
def test_an_error_in_the_film_view_is_raised_not_lost(monkeypatch: pytest.MonkeyPatch, worker: bool) -> None:
    if not worker:
        monkeypatch.setattr(staged, "_view_pool", lambda: None)
    rgb = Radiograph(np.zeros((40, 60, 3), dtype=np.uint8), "rgb.png", "png")  # not (H, W): view_of refuses it
    if worker:
        drawing = PanelDrawing(rgb, 256)
        with pytest.raises(ValueError, match="must be \\(H, W\\) uint8"):
            drawing.finish(analysis(width=60, height=40))
    else:
        with pytest.raises(ValueError, match="must be \\(H, W\\) uint8"):
            PanelDrawing(rgb, 256).finish(analysis(width=60, height=40))


def test_the_radiograph_is_never_drawn_on() -> None:
    rad = film(value=90)
    PanelDrawing(rad, 300).finish(analysis())
    assert rad.pixels.min() == rad.pixels.max() == 90
