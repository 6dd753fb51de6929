"""What the page shows for a case: the panels to draw and redraw, the summary, the ranked scores, the target-class
choices, the notes to show once, and one-line error messages in the page's words."""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..cams import CamRequest, is_class_agnostic, method_name
from ..compare import SOURCE_DATASET, SOURCE_USER
from ..errors import CxrDemoError
from ..imaging import Radiograph
from ..datasets.nih import TOP1
from ..render import PANEL_NAMES, Hints, PanelDrawing, render_panels
from ..render.files import FILM_PANELS, remove_older_than, write_panels
from ..results import Analysis, CamResult
from .state import Case, CaseView

if TYPE_CHECKING:
    from ..predict import Predictor
    from ..render import Panels

#: Side of the panels shown on the page.
VIEW_PANEL_SIZE = 640
#: Panels that depend on the CAM or the ground truth only: all that changes without a new forward pass.
CAM_PANELS = ("comparison", "cam")
#: How each panel reaches the browser: the three film panels as JPEG at quality 95 without chroma subsampling
#: (visually lossless, a few ms each; lossless PNG cost 35-60 ms each on 2 cores and 3x the bytes), the chart
#: (flat colours and text) as PNG. The exported report is always PNG.
PANEL_FORMATS = {name: "JPEG" if name in FILM_PANELS else "PNG" for name in PANEL_NAMES}
#: Panel files older than this are removed from the panel folder as new ones are written. Gradio copies each file
#: into its own cache when the answer is sent, so the app's copy is only needed for a moment (load test: keeping
#: them 2 h doubled the disk used per request).
PANEL_MAX_AGE_S = 600.0
#: What the panels tell a user to do when the image has no ground truth.
PAGE_HINTS = Hints(no_truth="draw or type a box below")


def render_view(radiograph: Radiograph, analysis: Analysis, size: int = VIEW_PANEL_SIZE) -> tuple["Panels", float]:
    """The four panels of :mod:`cxrdemo.render` at ``size`` px, and the milliseconds taken to draw them."""
    start = time.perf_counter()
    panels = render_panels(radiograph, analysis, size=size, hints=PAGE_HINTS)
    return panels, (time.perf_counter() - start) * 1000.0


def start_drawing(predictor: "Predictor", radiograph: Radiograph, size: int = VIEW_PANEL_SIZE) -> PanelDrawing:
    """Start the page's panels of ``radiograph`` at ``size`` px before the network runs (the film is resized for
    display by :mod:`cxrdemo.render.staged`'s worker meanwhile); :func:`finish_drawing` draws them."""
    return PanelDrawing(radiograph, size, PAGE_HINTS, model_region=predictor.region_of(radiograph.width, radiograph.height))


def finish_drawing(drawing: PanelDrawing, analysis: Analysis) -> tuple["Panels", float]:
    """The four panels of ``analysis`` and the milliseconds the case waited for them once the analysis was done
    (the film view, made while the network ran, is not counted)."""
    start = time.perf_counter()
    panels = drawing.finish(analysis)
    return panels, (time.perf_counter() - start) * 1000.0


def write_page_panels(
    panels: "Panels", folder: str | os.PathLike, names: Sequence[str] = PANEL_NAMES, max_age_s: float = PANEL_MAX_AGE_S
) -> dict[str, str]:
    """Write the panels ``names`` as uniquely named files in ``folder`` (formats :data:`PANEL_FORMATS`, by
    :func:`cxrdemo.render.files.write_panels`); ``{name: path}``. Panel files older than ``max_age_s`` go.

    Gradio gets file paths, not PIL images: it copies each (atomically written) file into its cache, whereas a PIL
    image is re-encoded into a content-addressed cache file that a concurrent request for an identical panel can
    truncate mid-download.
    """
    remove_older_than(folder, max_age_s, "panel-*")
    paths = write_panels(panels, folder, "panel", film_format="jpeg", names=names, unique=True, png_compress_level=1)
    return {name: str(path) for name, path in paths.items()}


def panels_to_redraw(forward_ran: bool) -> tuple[str, ...]:
    """The panels the page must replace: all after a forward pass; otherwise panels (b) and (d) only, since
    (a) the prediction and (c) the probabilities cannot have changed (the browser keeps its copies)."""
    return PANEL_NAMES if forward_ran else CAM_PANELS


def label_scores(analysis: Analysis) -> dict[str, float]:
    """Ranked probabilities for a ``gr.Label``: each key names the model's decision threshold, with a check mark
    when the probability reaches it."""
    out: dict[str, float] = {}
    for p in analysis.probabilities:
        mark = " \u2713" if p.positive else ""
        out[f"{p.label} (threshold {p.threshold:.2f}){mark}"] = float(p.probability)
    return out


def target_choices(classes: Sequence[str], analysis: Analysis | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the target-class control: ``top-1 (Class)`` first, then every class."""
    top = f"{TOP1} ({analysis.top.label})" if analysis is not None and analysis.probabilities else TOP1
    return [(top, TOP1)] + [(c, c) for c in classes]


def target_info(method: str | None) -> str:
    """The line under the target-class control: says when the CAM method ignores the target class."""
    if method and is_class_agnostic(method):
        return f"no effect with {method_name(method)}: its map is class-agnostic (the same for every class)"
    return "the class the CAM explains (top-1: the highest-ranked class)"


def cam_description(cam: CamResult) -> str:
    """``Grad-CAM of Nodule``, or ``EigenCAM (class-agnostic)`` for a method whose map ignores the class."""
    if is_class_agnostic(cam.method):
        return f"{method_name(cam.method)} (class-agnostic)"
    return f"{method_name(cam.method)} of {cam.target}"


def _fmt_iou(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def truth_source_text(source: str) -> str:
    """Who drew the ground truth, as the IoU table's heading says it."""
    if source == SOURCE_USER:
        return "your boxes"
    if source.startswith(SOURCE_DATASET):
        return f"radiologist boxes of data set {source[len(SOURCE_DATASET):]}"
    return "NIH's radiologist boxes"


def iou_table(case: Case) -> str:
    """Markdown table of the IoUs, one row per ground-truth box (``""`` without ground truth): in the summary, and
    again beside *Apply ground truth* so that the result of applying a box is seen where the button is."""
    a = case.analysis
    if not a.ious:
        return ""
    src = truth_source_text(case.truth_source)
    lines = [f"| ground truth ({src}) | box IoU | CAM IoU |", "|---|---|---|"]
    lines += [f"| {row.label} | {row.box_iou_text()} | {_fmt_iou(row.cam_iou)} |" for row in a.ious]
    return "\n".join(lines)


#: Said where the IoUs would be when the user applied an empty box list (their word that there is no ground truth).
CLEARED_TRUTH = "No ground truth: you applied an empty box list (no IoU). *Back to NIH's boxes* brings NIH's list back."


def no_truth_text(case: Case, otherwise: str) -> str:
    """What the page says instead of the IoU table: :data:`CLEARED_TRUTH` when the user applied no boxes, else
    ``otherwise``."""
    return CLEARED_TRUTH if case.truth is not None and not case.truth else otherwise


def summarise(case: Case, timings_ms: dict[str, float] | None = None) -> str:
    """Markdown for the page: top class, notes, one IoU line per ground-truth box (or how to add one), the CAM,
    timings (``timings_ms``, default the analysis' own)."""
    a = case.analysis
    top = a.top
    verdict = "at or above" if top.positive else "below"
    lines = [
        f"**{a.image}** ({a.width}x{a.height}): top class **{top.label} {top.probability:.1%}** "
        f"({verdict} its threshold {top.threshold:.2f}).",
    ]
    for note in a.notes:  # e.g. that the model was trained on this very image
        lines += ["", f"> **Note:** {note}."]
    lines.append("")
    hint = "IoU: no ground truth for this image. Draw a box on it below (or type one), then *Apply ground truth*."
    lines.append(iou_table(case) or no_truth_text(case, hint))
    if a.cam is not None:
        cam = a.cam
        box = "no region reached the threshold" if cam.box is None else "box " + ", ".join(f"{v:.0f}" for v in cam.box.xyxy)
        lines += ["", f"CAM: {cam_description(cam)}, threshold {cam.threshold}: {box}."]
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in (a.timings_ms if timings_ms is None else timings_ms).items())
    lines.append("")
    lines.append(f"<small>Model: {a.model.get('architecture')} from {a.model.get('source')} "
                 f"(revision {a.model.get('revision')}). Timings: {stages}.</small>")  # fmt: skip
    if a.model.get("card"):  # a foreign model's card (cxrdemo.models.files.card_summary: plain text, clipped)
        lines.append(f"<small>Model card: {a.model['card']}</small>")
    return "\n".join(lines)


def same_radiograph(a: Radiograph, b: Radiograph) -> bool:
    """Whether two decoded radiographs are the same picture (name, size and pixels)."""
    return a.name == b.name and a.pixels.shape == b.pixels.shape and bool(np.array_equal(a.pixels, b.pixels))


def notes_to_show(previous: Case | None, radiograph: Radiograph, notes: Sequence[str]) -> tuple[list[str], frozenset[str]]:
    """The notes to pop up for ``radiograph``, and the notes counted as shown for it from now on.

    A note pops up at most once per radiograph (not again on *Analyse*, a CAM change or new ground truth), and not
    when the radiograph shown just before carried the same note (clicking through examples that all say "one of
    this model's training images"); the summary always lists every note.
    """
    same = previous is not None and same_radiograph(previous.radiograph, radiograph)
    shown = previous.shown_notes if same else frozenset()
    recent = frozenset(previous.analysis.notes) if previous is not None else frozenset()
    new = [n for n in dict.fromkeys(notes) if n not in shown and n not in recent]
    return new, shown | frozenset(notes)


def sentence(note: str) -> str:
    """``note`` as a sentence (capital first letter, full stop), to show several notes in one message."""
    text = note.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


def build_view(
    case: Case,
    panels: "Panels",
    render_ms: float,
    classes: Sequence[str],
    *,
    forward_ran: bool,
    messages: Sequence[str] = (),
) -> CaseView:
    """Everything the page shows for ``case`` (its analysis is complete: this adds the drawing time beside it)."""
    a = case.analysis
    timings = {**a.timings_ms, "render": render_ms}
    doc = a.to_json()
    doc["timings_ms"] = {k: round(v, 2) for k, v in timings.items()}
    return CaseView(
        case=case,
        panels=panels,
        label=label_scores(a),
        summary=summarise(case, timings),
        truth_table=iou_table(case) or no_truth_text(case, "No ground truth applied: the IoUs appear here and in the panels."),
        json=doc,
        target_choices=target_choices(classes, a),
        messages=list(messages),
        forward_ran=forward_ran,
        render_ms=render_ms,
        redraw=panels_to_redraw(forward_ran),
        target_info=target_info(case.settings.cam.method),
    )


def target_value(request: CamRequest) -> str:
    """The target-class control's value for ``request`` (``top-1`` when the target is the top-1 class)."""
    return request.target_text


# ----------------------------------------------------------------------------------------------------- errors
#: CLI wording in package messages -> what the page calls the same thing (the model folder is typed into the
#: "Model source" box, there is no --weights flag on a page).
_PAGE_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:pass|use|give) --weights(?: FOLDER| SRC)?"), "enter a model folder in {box}"),
    (re.compile(r"use a local model folder( \([^)]*\))? as the source"), r"enter a model folder\1 in {box}"),
    (re.compile(r"use a local (?:model )?folder"), "enter a model folder in {box}"),
    (re.compile(r"--weights"), "{box}"),
    (re.compile(r"use e\.g\. --cam-methods [\w,+]+"), "tick at least one CAM method"),
    (re.compile(r"--cam-methods"), "CAM methods"),
    (re.compile(r"--cam-threshold"), "CAM box threshold"),
    (re.compile(r"--faithfulness-images"), "ROAD images"),
    (re.compile(r"--sanity-images"), "Sanity images"),
    (re.compile(r"--unseen"), "Only images the model never saw"),
)
_OFFLINE_ADVICE = (re.compile(r" ?\(unset HF_HUB_OFFLINE\)"), re.compile(r"unset HF_HUB_OFFLINE and "))


def page_wording(message: str, box: str = "Model source") -> str:
    """A package message in the page's words: CLI flags become the page's controls (``box``: the text box the model
    came from, "Model B source" for the second model), and advice to unset ``HF_HUB_OFFLINE`` is dropped when it is
    not set."""
    from ..models.weights import hub_offline

    for pattern, words in _PAGE_WORDS:
        message = pattern.sub(words.replace("{box}", box), message)
    if not hub_offline():
        for pattern in _OFFLINE_ADVICE:
            message = pattern.sub("", message)
    return message


def describe_error(exc: BaseException) -> str:
    """One line for the page: a :class:`CxrDemoError`'s own message (in the page's words), or a short note for an
    unexpected failure. A public server cuts every absolute path to its last part (no server folder is shown)."""
    from ..publicmode import is_public
    from .sources import hide_paths

    if isinstance(exc, CxrDemoError):
        line = page_wording(" ".join(str(exc).split()))
    else:
        text = " ".join(str(exc).split())[:200]
        line = f"unexpected {exc.__class__.__name__}: {text} (this is a bug: please report it with the server log)"
    return hide_paths(line) if is_public() else line
