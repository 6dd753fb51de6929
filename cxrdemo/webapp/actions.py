"""What the page's buttons do, as orchestration only: decode nothing, draw nothing, word nothing here.

:func:`analyse_case` runs ONE forward pass; :func:`update_case` redoes the CAM and the comparison from the cached
:class:`~cxrdemo.predict.Inference` (a new forward pass only when the model source or device changed);
:func:`apply_truth` makes typed or drawn boxes the whole ground truth (:func:`restore_nih_truth`: NIH's list again). Each builds the
:class:`~cxrdemo.results.Analysis` complete (every timing in it before it is assembled, never changed after) and
hands it to :func:`cxrdemo.webapp.view.build_view`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..boxes import Box
from ..cams import method_name
from ..compare import SOURCE_USER, GroundTruth, TruthLookup, ground_truth
from ..errors import InputError
from ..imaging import Radiograph
from .boxes_text import check_boxes_text, merge_drawn, snap_to_nih
from .models import ModelCache, ModelKey, model_key
from .state import Case, CaseView, Progress, Settings, no_progress
from .view import VIEW_PANEL_SIZE, build_view, finish_drawing, notes_to_show, start_drawing

if TYPE_CHECKING:
    from ..predict import Inference, Predictor
    from ..render import PanelDrawing

#: ``update_case``'s ``truth`` value that keeps the case's ground truth.
KEEP = "keep"


def analyse_case(
    cache: ModelCache,
    radiograph: Radiograph,
    settings: Settings,
    truth: Sequence[Box] | None = None,
    progress: Progress = no_progress,
    panel_size: int = VIEW_PANEL_SIZE,
    previous: Case | None = None,
    *,
    lookup: TruthLookup | None = None,
) -> CaseView:
    """Run the model on ``radiograph`` (one forward pass), the CAM, the comparison, and render the panels.

    ``truth``: the user's boxes (original pixels), or ``None`` for NIH's list (else what ``lookup`` finds in the
    app's configured data sets). ``previous``: the case the page showed before, so that notes already shown for
    the same radiograph are not shown again.
    """
    key = model_key(settings.source, settings.device)
    predictor = cache.get(key, progress)
    checked = _ground_truth(predictor, radiograph, truth, lookup)  # before the network: bad boxes fail fast
    drawing = start_drawing(predictor, radiograph, panel_size)  # the film is resized for display meanwhile
    progress(0.35, "running the model")
    inference = predictor.forward(radiograph)
    return _case_view(predictor, radiograph, key, inference, settings, checked, progress, drawing, True, previous)


def update_case(
    cache: ModelCache,
    case: Case,
    settings: Settings,
    truth: Sequence[Box] | None | str = KEEP,
    progress: Progress = no_progress,
    panel_size: int = VIEW_PANEL_SIZE,
    *,
    lookup: TruthLookup | None = None,
) -> CaseView:
    """Redo the CAM and the comparison of ``case`` with new settings and/or ground truth.

    The cached forward pass is reused when the model source and device are unchanged (changing the CAM method,
    target class or threshold never runs the network); otherwise the image is run through the new model.
    ``truth=KEEP`` keeps the case's ground truth; ``None`` goes back to NIH's list (or ``lookup``'s data set);
    boxes replace it (no boxes: no ground truth).
    """
    key = model_key(settings.source, settings.device)
    predictor = cache.get(key, progress)
    same_model = key == case.key
    if isinstance(truth, str) and same_model and case.ground_truth is not None:
        checked = case.ground_truth  # checked once, for this model's classes
    else:
        boxes = case.truth if isinstance(truth, str) else truth
        checked = _ground_truth(predictor, case.radiograph, boxes, lookup)
    drawing = start_drawing(predictor, case.radiograph, panel_size)
    if same_model:
        inference, ran = case.inference, False
    else:
        progress(0.35, "running the new model")
        inference, ran = predictor.forward(case.radiograph), True
    return _case_view(predictor, case.radiograph, key, inference, settings, checked, progress, drawing, ran, case)


def apply_truth(
    cache: ModelCache,
    case: Case | None,
    text: str | None,
    progress: Progress = no_progress,
    panel_size: int = VIEW_PANEL_SIZE,
    drawn: Mapping[str, Any] | None = None,
    synced: Sequence[str] = (),
    *,
    lookup: TruthLookup | None = None,
) -> CaseView:
    """Make the typed/drawn boxes ``text`` the case's whole ground truth; no forward pass.

    The text is everything the user states: a box whose line was deleted is gone (NIH's too), and an empty text
    means no ground truth (:func:`restore_nih_truth` brings NIH's list back). ``drawn``/``synced``: the box-drawing
    control's current value and its lines when the text last took them in (:func:`~.boxes_text.merge_drawn`), so
    that a box drawn or relabelled just before the click counts. Errors name the line of the user's own ``text``.
    Lines that are exactly NIH's boxes of this image (all of them, nothing else) stay NIH's ground truth (or the
    configured data set's that ``lookup`` finds).
    """
    if case is None:
        raise InputError("analyse a radiograph first, then add its ground truth")
    predictor = cache.get(case.key, progress)
    classes = predictor.config.classes
    size = case.radiograph.width, case.radiograph.height
    check_boxes_text(text, classes, *size)  # the user's own text first: its errors count its own lines
    merged = merge_drawn(text, drawn, case, synced)[0] if drawn else text
    listed = _ground_truth(predictor, case.radiograph, None, lookup).boxes  # NIH's, or a configured data set's
    boxes, all_nih = snap_to_nih(check_boxes_text(merged, classes, *size), case.radiograph, listed)  # theirs stay exactly theirs
    return update_case(cache, case, case.settings, None if all_nih else tuple(boxes), progress, panel_size, lookup=lookup)


def restore_nih_truth(
    cache: ModelCache, case: Case | None, progress: Progress = no_progress, panel_size: int = VIEW_PANEL_SIZE, *,
    lookup: TruthLookup | None = None,
) -> CaseView:
    """Go back to NIH's box list as the case's ground truth (else what ``lookup`` finds in the app's configured data
    sets; none when neither knows the image)."""
    if case is None:
        raise InputError("analyse a radiograph first, then add its ground truth")
    return update_case(cache, case, case.settings, None, progress, panel_size, lookup=lookup)


def _ground_truth(
    predictor: "Predictor", radiograph: Radiograph, boxes: Sequence[Box] | None, lookup: TruthLookup | None
) -> GroundTruth:
    """The one check of ground truth: the user's boxes against the model's classes and the image, NIH's list or a
    configured data set's (``None``), or the user's word that there is none (no boxes)."""
    if boxes is not None and not boxes:
        return GroundTruth((), SOURCE_USER)
    classes = predictor.config.classes
    return ground_truth(radiograph.name, radiograph.width, radiograph.height, classes, list(boxes) if boxes else None,
                        lookup=lookup)


def _case_view(
    predictor: "Predictor",
    radiograph: Radiograph,
    key: ModelKey,
    inference: "Inference",
    settings: Settings,
    truth: GroundTruth,
    progress: Progress,
    drawing: "PanelDrawing",
    forward_ran: bool,
    previous: Case | None,
) -> CaseView:
    progress(0.6, f"{method_name(settings.cam.method)} and comparison")
    start = time.perf_counter()
    cam = predictor.cam(inference, settings.cam)
    timed = replace(inference, timings_ms={**inference.timings_ms, "cam": (time.perf_counter() - start) * 1000.0})
    analysis = predictor.assemble(timed, cam, truth, settings.score_threshold if predictor.is_detector else None)
    progress(0.8, "drawing the panels")
    panels, render_ms = finish_drawing(drawing, analysis)
    messages, shown = notes_to_show(previous, radiograph, analysis.notes)
    user = truth.boxes if truth.source == SOURCE_USER else None
    case = Case(radiograph, key, inference, settings, user, analysis, shown, truth)
    return build_view(case, panels, render_ms, predictor.config.classes, forward_ran=forward_ran, messages=messages)
