"""Side by side on the single-case page, and the ``compare_methods`` / ``compare_models`` API endpoints.

- :func:`case_methods`: every CAM method for the case's target and threshold, from the forward pass kept in the case
  (:func:`cxrdemo.sidebyside.compare_methods`: CAMs only, never a network pass), drawn as one tile per method
  (:func:`cxrdemo.render.render_method_tiles`) and, for the API, as one grid picture.
- :func:`case_models`: the case's radiograph through a second model B (from the app's :class:`.models.ModelCache`)
  with the same CAM request and ground truth, beside the case's own analysis A
  (:func:`cxrdemo.sidebyside.compare_models`); the four panels of each, and a Markdown comparison.
- :func:`api_methods` / :func:`api_models`: the same for an uploaded file (one forward pass per model).

No Gradio here; every failure a user can cause is a one-line :class:`~cxrdemo.errors.CxrDemoError`.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

from ..cams import CamRequest, is_class_agnostic, method_name
from ..compare import GroundTruth, TruthLookup, ground_truth
from ..errors import CxrDemoError, InputError
from ..imaging import Radiograph
from ..render import PANEL_NAMES, PANEL_TITLES, TILE_SIZE
from ..render.files import remove_older_than
from ..publicmode import clip_text
from ..render.film import numbered_labels
from .models import ModelCache, ModelKey, model_key
from .state import Case, Settings
from .view import PAGE_HINTS, PANEL_MAX_AGE_S, page_wording

if TYPE_CHECKING:
    from ..predict import Inference, Predictor
    from ..results import Analysis
    from ..sidebyside import MethodCell, ModelComparison

#: How many classes the A/B summary lists among the largest probability differences.
TOP_DIFFERENCES = 5
#: How many ranked classes the A/B summary lists for each model.
TOP_RANKED = 5
#: Prefix of the side-by-side picture files in the panel folder (pruned after :data:`PANEL_MAX_AGE_S`).
FILE_PREFIX = "side-"


@dataclass
class MethodsView:
    """Every CAM method on one case.

    Attributes:
        cells: one per method (map, box, IoUs), in the order of :data:`cxrdemo.cams.CAM_METHOD_KEYS`.
        tiles: one picture per method (same order), each with its name, CAM box and IoUs drawn in.
        captions: one line per method (name, what the map explains, IoUs).
        doc: the ``compare_methods`` JSON (see docs/api.md).
        grid: every tile in one picture (only when asked for: the API's answer).
    """

    cells: list["MethodCell"]
    tiles: list[Image.Image]
    captions: list[str]
    doc: dict[str, Any]
    grid: Image.Image | None = None


@dataclass
class ModelsView:
    """One radiograph through models A and B.

    Attributes:
        comparison: both analyses and what differs (:class:`cxrdemo.sidebyside.ModelComparison`).
        panels: the four panels of A then of B, each with a caption (``A: (a) Prediction``...).
        summary: Markdown: both models, top-ranked classes, IoUs per ground-truth box, the largest differences.
        doc: the ``compare_models`` JSON: ``{"a", "b", "top_changed", "differences"}``.
        rows: both rows of panels in one picture (only when asked for: the API's answer).
        notes: remarks for the page (e.g. that B is the same model as A).
    """

    comparison: "ModelComparison"
    panels: list[tuple[Image.Image, str]]
    summary: str
    doc: dict[str, Any]
    rows: Image.Image | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- CAM methods
def methods_view(
    predictor: "Predictor",
    radiograph: Radiograph,
    inference: "Inference",
    truth: GroundTruth,
    request: CamRequest,
    analysis: "Analysis",
    *,
    size: int = TILE_SIZE,
    compose: bool = False,
    timings_ms: dict[str, float] | None = None,
) -> MethodsView:
    """Every method on ``inference`` (no network pass) for ``request``'s target and threshold, drawn."""
    from ..render import render_method_grid, render_method_tiles
    from ..sidebyside import compare_methods

    timings = dict(timings_ms or {})
    start = time.perf_counter()
    cells = compare_methods(predictor, inference, truth, target=request.target, threshold=request.threshold)
    timings["cams"] = (time.perf_counter() - start) * 1000.0
    start = time.perf_counter()
    tiles = render_method_tiles(radiograph, analysis, cells, truth.boxes, size)
    grid = render_method_grid(radiograph, analysis, cells, truth.boxes, size) if compose else None
    timings["render"] = (time.perf_counter() - start) * 1000.0
    target = next((c.cam.target for c in cells if not c.class_agnostic), cells[0].cam.target if cells else None)
    doc = {
        "image": analysis.image,
        "model": dict(analysis.model),
        "target": target,
        "threshold": request.threshold,
        "ground_truth": [{"label": b.label, "xyxy": b.rounded()} for b in truth.boxes],
        "methods": [c.to_json() for c in cells],
        "timings_ms": {k: round(v, 2) for k, v in timings.items()},
    }
    return MethodsView(cells, tiles, [c.caption for c in cells], doc, grid)


def case_methods(cache: ModelCache, case: Case | None, *, size: int = TILE_SIZE, lookup: TruthLookup | None = None) -> MethodsView:
    """Every CAM method for the case's target and threshold, from the case's cached forward pass."""
    if case is None:
        raise InputError("analyse a radiograph first, then compare the CAM methods on it")
    predictor = cache.get(case.key)
    truth = case.ground_truth or _truth(predictor, case.radiograph, case.truth, lookup)
    return methods_view(predictor, case.radiograph, case.inference, truth, case.settings.cam, case.analysis, size=size)


def api_methods(cache: ModelCache, radiograph: Radiograph, settings: Settings, boxes=None, *, size: int = TILE_SIZE,
                lookup: TruthLookup | None = None) -> MethodsView:
    """The ``compare_methods`` endpoint: one forward pass, then every method; the grid composed."""
    predictor = cache.get(model_key(settings.source, settings.device))
    truth = _truth(predictor, radiograph, boxes, lookup)
    inference = predictor.forward(radiograph)
    analysis = predictor.assemble(inference, None, truth)
    return methods_view(predictor, radiograph, inference, truth, settings.cam, analysis, size=size, compose=True,
                        timings_ms=inference.timings_ms)  # fmt: skip


# ------------------------------------------------------------------------------------------- two models
def _truth(predictor: "Predictor", radiograph: Radiograph, boxes, lookup: TruthLookup | None) -> GroundTruth:
    classes = predictor.config.classes
    return ground_truth(radiograph.name, radiograph.width, radiograph.height, classes, list(boxes) if boxes else None,
                        lookup=lookup)


def analyse_with(
    cache: ModelCache, key: ModelKey, radiograph: Radiograph, request: CamRequest, boxes=None, tag: str = "B",
    score_threshold: float | None = None,
    lookup: TruthLookup | None = None,
) -> "Analysis":
    """``radiograph`` through the model ``key``: forward pass, the CAM of ``request``, ground truth ``boxes`` (or
    NIH's, or ``lookup``'s data set's), IoUs; a detector's boxes above ``score_threshold`` (``None``: its own). A target class the model does
    not have is a one-line error naming the model."""
    try:
        predictor = cache.get(key)
    except CxrDemoError as exc:  # name the box the user typed this model into, not the first model's
        raise type(exc)(page_wording(str(exc), box=f"Model {tag} source")) from None
    if request.target is not None and request.target not in predictor.config.classes:
        from ..datasets.nih import match_class

        if match_class(request.target, predictor.config.classes) is None:
            raise InputError(f"model {tag} has no class {clip_text(request.target)!r}; pick top-1 or one of its classes as the CAM target")
    truth = _truth(predictor, radiograph, boxes, lookup)
    inference = predictor.forward(radiograph)
    start = time.perf_counter()
    cam = predictor.cam(inference, request)
    inference.timings_ms["cam"] = (time.perf_counter() - start) * 1000.0
    return predictor.assemble(inference, cam, truth, score_threshold if predictor.is_detector else None)


def models_view(radiograph: Radiograph, a: "Analysis", b: "Analysis", *, size: int = TILE_SIZE, compose: bool = False) -> ModelsView:
    """A and B side by side: the panels of each, the summary, the JSON (and both rows in one picture)."""
    from ..render import render_model_rows, render_panels
    from ..sidebyside import compare_models

    comparison = compare_models(a, b)
    panels: list[tuple[Image.Image, str]] = []
    for tag, analysis in (("A", a), ("B", b)):
        drawn = render_panels(radiograph, analysis, size=size, hints=PAGE_HINTS).as_dict()
        panels += [(drawn[name], f"{tag}: {PANEL_TITLES[name]}") for name in PANEL_NAMES]
    notes = []
    if a.model.get("source") == b.model.get("source") and a.model.get("revision") == b.model.get("revision"):
        notes.append("model B is the same model as A: enter another model source for B")
    rows = render_model_rows(radiograph, [a, b], size=size, hints=PAGE_HINTS) if compose else None
    return ModelsView(comparison, panels, models_summary(comparison), comparison.to_json(), rows, notes)


def case_models(cache: ModelCache, case: Case | None, source_b: str | None, device: str | None = None, *, size: int = TILE_SIZE,
                lookup: TruthLookup | None = None) -> ModelsView:
    """The case (model A, as shown) beside the same radiograph through model ``source_b`` on ``device`` (default:
    A's device), with A's CAM request and ground truth."""
    if case is None:
        raise InputError("analyse a radiograph first, then compare it with a second model")
    key = model_key(source_b, device or case.key.device)
    b = analyse_with(cache, key, case.radiograph, case.settings.cam, case.truth, score_threshold=case.settings.score_threshold,
                     lookup=lookup)
    return models_view(case.radiograph, case.analysis, b, size=size)


def api_models(
    cache: ModelCache, radiograph: Radiograph, settings: Settings, source_b: str | None, boxes=None, *, size: int = TILE_SIZE,
    lookup: TruthLookup | None = None,
) -> ModelsView:
    """The ``compare_models`` endpoint: the radiograph through A (``settings.source``) and B (``source_b``); both
    sources are checked before either model is loaded."""
    key_a, key_b = model_key(settings.source, settings.device), model_key(source_b, settings.device)
    a = analyse_with(cache, key_a, radiograph, settings.cam, boxes, "A", settings.score_threshold, lookup)
    b = analyse_with(cache, key_b, radiograph, settings.cam, boxes, "B", settings.score_threshold, lookup)
    return models_view(radiograph, a, b, size=size, compose=True)


def _model_line(tag: str, a: "Analysis") -> str:
    m = a.model
    return f"**{tag}**: `{m.get('architecture')}` from `{m.get('source')}` (revision `{m.get('revision')}`)"


def _cam_text(a: "Analysis") -> str:
    cam = a.cam
    if cam is None:
        return "none"
    what = "class-agnostic" if is_class_agnostic(cam.method) else f"of {cam.target}"
    return f"{method_name(cam.method)} {what}"


def _ranked(a: "Analysis", k: int) -> str:
    """The ``k``-th ranked class of ``a`` with its probability (a check mark at or above its threshold)."""
    if k >= len(a.probabilities):
        return ""
    p = a.probabilities[k]
    return f"{p.label} {p.probability:.1%}" + (" \u2713" if p.positive else "")


def _detection_text(a: "Analysis") -> str:
    """A detector's shown boxes in one cell: how many above which score, findings found / missed, unmatched."""
    d = a.detection
    if d is None:
        return "not a detector"
    found = sum(d.matched)
    return f"{len(a.boxes)} above {d.score_threshold:.2f}; found {found}, missed {len(d.missed)}, unmatched {len(d.unmatched)}"


def _iou(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def models_summary(comparison: "ModelComparison") -> str:
    """Markdown: the two models, the top-ranked classes of each, the CAM, one row per ground-truth box (box IoU, CAM
    IoU of each model), whether the top class changed, and the largest differences B - A."""
    a, b = comparison.a, comparison.b
    lines = [_model_line("A", a) + "  ", _model_line("B", b), "", "| | A | B |", "|---|---|---|"]
    for k in range(min(TOP_RANKED, max(len(a.probabilities), len(b.probabilities)))):
        lines.append(f"| rank {k + 1} | {_ranked(a, k)} | {_ranked(b, k)} |")
    lines.append(f"| CAM | {_cam_text(a)} | {_cam_text(b)} |")
    if a.detection is not None or b.detection is not None:
        lines.append(f"| detector boxes | {_detection_text(a)} | {_detection_text(b)} |")
    rows_b = list(b.ious)
    names = numbered_labels([row.label for row in a.ious])  # "Atelectasis #1", "#2" as in the panels
    for i, (name, row) in enumerate(zip(names, a.ious)):
        other = rows_b[i] if i < len(rows_b) else None
        lines.append(f"| {name}: box IoU | {row.box_iou_text()} | {other.box_iou_text() if other else 'n/a'} |")
        lines.append(f"| {name}: CAM IoU | {_iou(row.cam_iou)} | {_iou(other.cam_iou if other else None)} |")
    if not a.ious:
        lines.append("| ground truth | none for this image | |")
    changed = "**yes**" if comparison.top_changed else "no"
    lines += ["", f"Top class changed: {changed}."]
    diffs = [f"{label} {value:+.3f}" for label, value in comparison.differences[:TOP_DIFFERENCES]]
    if diffs:
        lines.append(f"Largest probability differences (B \u2212 A): {', '.join(diffs)}.")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ files
def write_pictures(images: Sequence[Image.Image], folder: str | os.PathLike, quality: int = 90) -> list[str]:
    """Write ``images`` as uniquely named JPEGs (atomically: a temporary file renamed) into ``folder``; side-by-side
    files older than :data:`PANEL_MAX_AGE_S` go."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    remove_older_than(root, PANEL_MAX_AGE_S, f"{FILE_PREFIX}*")
    stem = uuid.uuid4().hex[:12]
    out = []
    for i, img in enumerate(images):
        path = root / f"{FILE_PREFIX}{stem}-{i}.jpg"
        tmp = root / f".{path.name}.tmp"
        img.convert("RGB").save(tmp, format="JPEG", quality=quality, subsampling=0)
        os.replace(tmp, path)
        out.append(str(path))
    return out


def write_picture(image: Image.Image, folder: str | os.PathLike) -> str:
    """One picture (a grid or both rows), as :func:`write_pictures`."""
    return write_pictures([image], folder)[0]
