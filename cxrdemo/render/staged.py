"""The four panels of one case, the film resized for display while the network runs.

A single case is decode -> preprocess -> forward -> CAM -> comparison -> panels. The film resized for display
(:func:`~cxrdemo.render.film.view_of`) needs only the decoded film, so :class:`PanelDrawing` hands it to a worker
thread before the network runs; torch and OpenCV release the GIL while they compute, so the resize overlaps the
network (on this project's 2-vCPU VM it saved 0.4 of its 0.9 ms: bench/RESULTS.md). The panels themselves need
the CAM and are drawn by :meth:`PanelDrawing.finish` on the calling thread, one after the other: their drawing is
mostly Python holding the GIL (text, boxes, placement), and two threads drawing at once were measured no faster
than one (bench/RESULTS.md)::

    drawing = PanelDrawing(radiograph, size, hints, model_region=predictor.region_of(w, h))  # film view: worker
    inference = predictor.forward(radiograph)                    # meanwhile: preprocess + forward, this thread
    analysis = predictor.assemble(inference, predictor.cam(inference), truth)
    panels = drawing.finish(analysis)                            # the four panels, this thread

:func:`render_panels` draws a finished analysis in one go, with the same pixels. On a one-core machine there is no
worker and the film view is made in place.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..boxes import Box
from ..imaging import Radiograph
from ..results import Analysis
from .chart import render_probabilities
from .film import DEFAULT_SIZE, NO_HINTS, Hints, View, film_view, view_of
from .panels import Panels, _cam, _comparison, _prediction, _title, footer_lines

__all__ = ["PanelDrawing", "render_panels"]


class PanelDrawing:
    """The panels of one case: the film view started at once, the panels drawn by :meth:`finish`.

    Args:
        radiograph: the decoded film.
        size: longest side of the film panels, and side of the square chart, in pixels.
        hints: what the interface tells a user to do when ground truth or the CAM is missing.
        model_region: the part of the film the model sees, in original pixels, when its preprocessing crops
            (``Predictor.region_of``); ``None``: the whole film.
    """

    def __init__(
        self,
        radiograph: Radiograph,
        size: int = DEFAULT_SIZE,
        hints: Hints = NO_HINTS,
        *,
        model_region: Box | None = None,
    ) -> None:
        self._radiograph = radiograph
        self._size = size
        self._hints = hints
        self._frame = (radiograph.width, radiograph.height, model_region)
        pool = _view_pool()
        if pool is None:
            self._view: Future = Future()
            self._view.set_result(view_of(radiograph, size, *self._frame))
        else:
            self._view = pool.submit(view_of, radiograph, size, *self._frame)

    def finish(self, analysis: Analysis) -> Panels:
        """All four panels of the final ``analysis`` (the film view waited for, or made again if ``analysis`` is of
        another frame than the one announced)."""
        return _draw(self._view_for(analysis), analysis, self._size, self._hints)

    def _view_for(self, analysis: Analysis) -> View:
        """The view started in the constructor, or a new one if ``analysis`` is of another frame than announced."""
        if (analysis.width, analysis.height, analysis.model_region) == self._frame:
            return self._view.result()
        return film_view(self._radiograph, analysis, self._size)


def render_panels(
    radiograph: Radiograph, analysis: Analysis, size: int = DEFAULT_SIZE, *, hints: Hints = NO_HINTS
) -> Panels:
    """All four panels of one finished analysis, the film resized only once.

    Args:
        radiograph: the decoded film.
        analysis: its analysis.
        size: longest side of the film panels, and side of the square chart, in pixels.
        hints: what the interface tells a user to do when ground truth or the CAM is missing.

    Returns:
        :class:`~cxrdemo.render.panels.Panels` with the prediction, comparison, probability and CAM panels (RGB),
        the title line (image name, model architecture, top finding) and the footer lines
        (:func:`~cxrdemo.render.panels.footer_lines`) for :func:`~cxrdemo.render.panels.composite`.
    """
    return _draw(film_view(radiograph, analysis, size), analysis, size, hints)


def _draw(view: View, analysis: Analysis, size: int, hints: Hints) -> Panels:
    return Panels(
        prediction=_prediction(view, analysis),
        comparison=_comparison(view, analysis, hints),
        probabilities=render_probabilities(analysis, size),
        cam=_cam(view, analysis, hints),
        title=_title(analysis),
        footer=tuple(footer_lines(analysis)),
    )


_POOL_LOCK = threading.Lock()
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _view_pool() -> ThreadPoolExecutor | None:
    """Two worker threads that make film views (``None`` on a single core), made once per process (a forked child,
    whose copy of the pool has no threads, makes its own)."""
    global _POOL
    if (os.cpu_count() or 1) < 2:
        return None
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="cxrdemo-view"))
        return _POOL[1]
