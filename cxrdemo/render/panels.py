"""The four panels a user sees, as PIL images, and a 2x2 composite of them for reports.

- :func:`render_prediction` (a): the radiograph with the model's box(es), label and score;
- :func:`render_comparison` (b): ground truth vs the model's box vs the CAM box, IoUs in the legend;
- :func:`~cxrdemo.render.chart.render_probabilities` (c): every class ranked, decision threshold ticked;
- :func:`render_cam` (d): the CAM overlay with its box and a caption naming the method;
- :func:`composite` (2x2 grid under a title line, above :func:`footer_lines`: the disclaimer and, for an image
  the model was trained or validated on, that note); all four panels at once are drawn by
  :mod:`cxrdemo.render.staged` (:func:`~cxrdemo.render.staged.render_panels`).

Cheap by construction: the film is resized once (:func:`~cxrdemo.render.film.film_view`) and copied per
panel; the drawing is :mod:`cxrdemo.render.draw`'s; the CAM is coloured and blended with uint8 OpenCV lookup
tables.

Display size: the film's longest side becomes ``size`` (aspect kept) in one resize: big films are shrunk, small
ones (256 px copies) enlarged to ``size`` and never beyond, so text and lines keep one legible scale. Text always
sits on a dark backdrop, inside the panel, clear of the top-right corner where the web page draws its buttons.

What a panel tells a user to *do* (draw a box, pick a CAM method) depends on the interface: the caller passes it
as :class:`~cxrdemo.render.film.Hints`. CAM method names come from :mod:`cxrdemo.cams` (torch-free).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ..boxes import Box
from ..cams import is_class_agnostic, method_name
from ..compare import is_radiologists
from ..imaging import Radiograph
from ..results import CROP_NOTE, Analysis
from .draw import (
    BACKGROUND,
    MUTED,
    TEXT,
    BoxStyle,
    Rect,
    Row,
    block_size,
    blend_tables,
    canvas,
    colourbar,
    draw_block,
    fit,
    line_height,
    paint_box,
    place_block,
    scale_for,
    text,
    with_text_strip,
)
from .film import CAM, MODEL, NO_HINTS, TRUTH, Hints, View, box_text, film_view, numbered_labels, pretty, probability_of

#: Most model boxes drawn on the prediction panel (readability).
MAX_PREDICTION_BOXES = 3
#: Most detector boxes drawn on panels (a) and (b) (highest scores first; the JSON has them all).
MAX_DETECTOR_BOXES = 10
#: Perceptually uniform, colour-blind-safe map for the CAM; it holds no sky blue, so the CAM box stands out.
CAM_COLORMAP = "inferno"
#: CAM opacity grows with the map's value (min, max): the film shows through where the model did not look.
CAM_ALPHA = (0.12, 0.62)
#: Where the ground truth came from (``Analysis.truth_source``) -> how the legend names it.
TRUTH_SOURCES = {"NIH": "radiologist", "user": "user"}
#: Said wherever model boxes are drawn when ``Analysis.boxes_static``: the box head outputs one box per class.
STATIC_BOXES = "boxes: the per-class prior, not image-specific"
#: What a class-agnostic CAM (EigenCAM) is, said instead of "of <class>".
CLASS_AGNOSTIC = "class-agnostic: the same map for every class"
#: First footer line of every composite and exported panel file.
DISCLAIMER = "Research demo, not a diagnostic device."
#: The panels, in order, and their titles (:func:`panel_titles` names panel (d)'s CAM method).
PANEL_NAMES = ("prediction", "comparison", "probabilities", "cam")
PANEL_TITLES = {
    "prediction": "(a) Prediction",
    "comparison": "(b) Ground truth vs prediction vs CAM",
    "probabilities": "(c) Probabilities and thresholds",
    "cam": "(d) CAM",
}


# ----------------------------------------------------------------------------------------- (a) prediction
def _prediction_boxes(analysis: Analysis) -> tuple[list[Box], int]:
    """The model boxes to draw (positives, capped; else the top one) and how many boxes are positive; a detector's
    boxes (already those above its score threshold), capped at :data:`MAX_DETECTOR_BOXES`."""
    if analysis.detection is not None:
        return analysis.boxes[:MAX_DETECTOR_BOXES], len(analysis.boxes)
    positives = []
    for box in analysis.boxes:
        p = probability_of(analysis, box.label)
        if (box.score or 0.0) >= (p.threshold if p is not None else 0.5):
            positives.append(box)
    return positives[:MAX_PREDICTION_BOXES] or analysis.boxes[:1], len(positives)


def _prediction_rows(analysis: Analysis, n_shown: int, n_positive: int) -> list[Row]:
    if analysis.detection is not None:
        t = analysis.detection.score_threshold
        note = f"no box scores above {t:.2f}" if not n_positive else f"{n_positive} box(es) score above {t:.2f}" + (
            f": top {n_shown} shown" if n_positive > n_shown else "")
        return [Row("detector box: class, score", MODEL.colour, MODEL), Row(note, MUTED)]
    if not analysis.boxes:
        note = "this model predicts no box"
    elif n_positive == 0:
        note = "no box class reaches its threshold: top-1 shown"
    elif n_positive > n_shown:
        note = f"{n_positive} box classes reach their threshold: top {n_shown} shown"
    else:
        note = f"{n_positive} of {len(analysis.boxes)} box classes reach their threshold"
    rows = [Row("model box: class, probability", MODEL.colour, MODEL), Row(note, MUTED)]
    if analysis.boxes_static and analysis.boxes:
        rows.append(Row(STATIC_BOXES, TEXT, bold=True))
    return rows


def _prediction(view: View, analysis: Analysis) -> Image.Image:
    shown, n_positive = _prediction_boxes(analysis)
    drawn = [(b, r) for b in shown if (r := view.rect(b)) is not None]
    img, draw = canvas(view.film.copy())
    for _, rect in drawn:
        paint_box(img, rect, MODEL, view.scale.line)
    taken: list[Rect] = [view.keep_clear]
    for box, rect in drawn:
        view.label(draw, rect, box_text(box), MODEL.colour, taken)
    view.caption(draw, _prediction_rows(analysis, len(shown), n_positive), [r for _, r in drawn] + taken[1:])
    return img


def render_prediction(radiograph: Radiograph, analysis: Analysis, size: int | None = None) -> Image.Image:
    """The radiograph with the model's box(es), each labelled with its class and probability.

    Boxes whose class probability reaches that class's decision threshold are drawn (at most
    :data:`MAX_PREDICTION_BOXES`, highest first); when none does, the top-1 box. A caption says which, and that the
    boxes are the per-class prior when ``analysis.boxes_static``.

    Args:
        radiograph: the decoded film (any size).
        analysis: the model's analysis of it (boxes in the film's original pixels).
        size: longest side of the panel in pixels (default :data:`DEFAULT_SIZE`).

    Returns:
        An RGB image of :func:`display_size` of the film.
    """
    return _prediction(film_view(radiograph, analysis, size), analysis)


# ----------------------------------------------------------------------------------------- (b) comparison
def _comparison_rows(analysis: Analysis, hints: Hints = NO_HINTS) -> list[Row]:
    """The comparison's legend: with ground truth, the three keys and one IoU line per ground-truth box; without,
    the no-ground-truth message and what the model's top box and the CAM box are."""
    cam = analysis.cam
    method = method_name(cam.method) if cam is not None else ""
    agnostic = cam is not None and is_class_agnostic(cam.method)
    static = [Row(STATIC_BOXES, MODEL.colour, indent=True)] if analysis.boxes_static and analysis.boxes else []
    if not analysis.ious:
        top = analysis.boxes[0] if analysis.boxes else None
        if cam is None:
            cam_text = "no CAM computed"
        elif cam.box is None:
            cam_text = f"{CAM.name}: no {method} region \u2265 {cam.threshold}"
        elif agnostic:
            cam_text = f"{CAM.name}: {method} (class-agnostic)"  # panel (d) says what that means
        else:
            cam_text = f"{CAM.name}: {method} of {pretty(cam.target)}"
        if analysis.truth_source == "user" and not analysis.ground_truth:  # the user applied an empty list
            message = "no ground truth: you applied none"
        else:
            message = "no ground truth for this image" + (f": {hints.no_truth}" if hints.no_truth else "")
        return [
            Row(message, TEXT, bold=True),
            Row(f"{MODEL.name}: {box_text(top)}" if top else "no model box", MODEL.colour, MODEL),
            *static,
            Row(cam_text, CAM.colour, CAM),
        ]
    if cam is None:
        cam_text = "no CAM computed"
    elif agnostic:
        cam_text = f"{CAM.name} ({method}, class-agnostic, t={cam.threshold})"
    else:
        cam_text = f"{CAM.name}, same class ({method}, t={cam.threshold})"
    source = TRUTH_SOURCES.get(analysis.truth_source) or ("radiologist" if is_radiologists(analysis.truth_source) else None)
    rows = [
        Row(f"{TRUTH.name} ({source})" if source else TRUTH.name, TRUTH.colour, TRUTH),
        Row(f"{MODEL.name}, same class", MODEL.colour, MODEL),
        *static,
        Row(cam_text, CAM.colour, CAM),
    ]
    names = numbered_labels([r.label for r in analysis.ious])
    found = analysis.detection.matched if analysis.detection is not None else (None,) * len(names)
    for name, row, ok in zip(names, analysis.ious, found):
        model_iou = "no box" if row.box_iou is None else row.box_iou_text()  # "(prior box ...)" when it is one
        cam_iou = "n/a" if row.cam_iou is None else f"{row.cam_iou:.2f}"
        verdict = "" if ok is None else (" \u00b7 found" if ok else " \u00b7 MISSED")
        rows.append(Row(f"{name}: IoU model {model_iou} \u00b7 CAM {cam_iou}{verdict}", TEXT, bold=True))
    if analysis.detection is not None:
        d = analysis.detection
        rows.append(Row(f"{len(d.unmatched)} box(es) above {d.score_threshold:.2f} match no finding (IoU \u2265 {d.match_iou:g})", MODEL.colour, indent=True))
    return rows


def _comparison_boxes(analysis: Analysis) -> list[tuple[Box, BoxStyle]]:
    """The boxes of the comparison, in drawing order, each once."""
    cam_box = analysis.cam.box if analysis.cam is not None else None
    if analysis.ious:
        pairs = [(b, s) for r in analysis.ious for b, s in ((r.truth, TRUTH), (r.box, MODEL), (r.cam_box, CAM))]
    else:
        pairs = [(analysis.boxes[0] if analysis.boxes else None, MODEL), (cam_box, CAM)]
    if analysis.detection is not None:  # a detector: its unmatched boxes too (the false or unconfirmed findings)
        pairs += [(b, MODEL) for b in analysis.detection.unmatched[:MAX_DETECTOR_BOXES]]
    unique: dict[tuple[Box, BoxStyle], None] = {}  # an ordered set: each box once, in drawing order, linear time
    for box, style in pairs:
        if box is not None:
            unique.setdefault((box, style), None)
    return list(unique)


def _comparison(view: View, analysis: Analysis, hints: Hints = NO_HINTS) -> Image.Image:
    drawn = [(b, s, r) for b, s in _comparison_boxes(analysis) if (r := view.rect(b)) is not None]
    img, draw = canvas(view.film.copy())
    for _, style, rect in drawn:
        paint_box(img, rect, style, view.scale.line)
    # Name the truth boxes; name every box when several classes are compared at once.
    several = len({b.label for b, s, _ in drawn if s is TRUTH}) > 1
    detector = analysis.detection is not None
    taken: list[Rect] = [view.keep_clear]
    for box, style, rect in drawn:
        if detector and style is MODEL:  # a detector's box: its class and score
            view.label(draw, rect, box_text(box), style.colour, taken)
        elif style is TRUTH or several:
            view.label(draw, rect, pretty(box.label), style.colour, taken)
    view.caption(draw, _comparison_rows(analysis, hints), [r for _, _, r in drawn] + taken[1:])
    return img


def render_comparison(
    radiograph: Radiograph, analysis: Analysis, size: int | None = None, *, hints: Hints = NO_HINTS
) -> Image.Image:
    """Ground truth vs the model's box vs the CAM box, with each ground-truth box's IoUs in the legend.

    For every row of ``analysis.ious``: the ground-truth box (solid), the model's box of that class (dashed) and
    the CAM box of that class (dotted). The legend names the ground truth's source (``analysis.truth_source``).
    Without ground truth the panel says so (then ``hints.no_truth``) and still shows the model's top box and the
    CAM box.

    Args:
        radiograph: the decoded film.
        analysis: its analysis (``ious``, ``boxes``, ``cam``, ``truth_source``, ``boxes_static``).
        size: longest side of the panel in pixels (default :data:`DEFAULT_SIZE`).
        hints: what the interface tells a user to do.

    Returns:
        An RGB image of :func:`display_size` of the film.
    """
    return _comparison(film_view(radiograph, analysis, size), analysis, hints)


# ---------------------------------------------------------------------------------------------- (d) CAM
def _overlay(gray: np.ndarray, heatmap: np.ndarray) -> Image.Image:
    """The film with the heat map stretched onto it, coloured, blended with an opacity that grows with heat.

    ``film * (1 - alpha) + colour * alpha`` per pixel, both terms looked up from the map level (uint8 OpenCV
    LUTs; float arithmetic over the full image costs several times more).
    """
    h, w = gray.shape
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    level = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)  # small: the model frame
    level = cv2.resize(level, (w, h), interpolation=cv2.INTER_LINEAR)
    colour, keep = blend_tables(CAM_COLORMAP, CAM_ALPHA)
    film = cv2.multiply(gray, cv2.LUT(level, keep), scale=1 / 255)
    blended = cv2.add(cv2.applyColorMap(level, colour), cv2.cvtColor(film, cv2.COLOR_GRAY2RGB))
    return Image.fromarray(blended, "RGB")


def _no_cam(view: View, hints: Hints) -> Image.Image:
    img, draw = canvas(Image.fromarray(cv2.convertScaleAbs(view.gray, alpha=0.4), "L").convert("RGB"))
    rows = [Row("no CAM was computed", TEXT, bold=True)] + ([Row(hints.no_cam, MUTED)] if hints.no_cam else [])
    px = view.scale.font
    w, h, _ = block_size(rows, px, view.scale)
    spot = fit(view.size[0] // 2 - w // 2, view.size[1] // 2 - h // 2, w, h, view.size)
    draw_block(draw, spot, rows, px, view.scale, 0)
    return img


def _cam_heading(analysis: Analysis) -> str:
    """The caption's first line: the method, then its class (with probability) or that it has none."""
    cam = analysis.cam
    assert cam is not None
    if is_class_agnostic(cam.method):
        return f"{method_name(cam.method)} ({CLASS_AGNOSTIC})"
    p = probability_of(analysis, cam.target)
    return f"{method_name(cam.method)} \u00b7 {pretty(cam.target)}" + (f" (p {p.probability:.2f})" if p is not None else "")


def _cam(view: View, analysis: Analysis, hints: Hints = NO_HINTS) -> Image.Image:
    cam = analysis.cam
    if cam is None:
        return _no_cam(view, hints)
    scale = view.scale
    img, draw = canvas(_overlay(view.gray, cam.heatmap))
    rect = view.rect(cam.box) if cam.box is not None else None
    if rect is not None:
        paint_box(img, rect, CAM, scale.line)
    box_text = f"{CAM.name}: map \u2265 {cam.threshold}/255" if rect else f"no region \u2265 {cam.threshold}/255: no box"
    rows = [Row(_cam_heading(analysis), TEXT, bold=True), Row(box_text, CAM.colour, CAM)]
    px = scale.small
    w, h, key_len = block_size(rows, px, scale)
    lh, bar_h = line_height(px), max(4, px // 2)
    w = max(w, 8 * px)
    spot = place_block(w, h + lh + bar_h + scale.pad, view.size, [rect] if rect else [], scale.margin, view.keep_clear)
    draw_block(draw, spot, rows, px, scale, key_len)
    x1, x2, y = spot[0] + scale.pad, spot[2] - scale.pad, spot[1] + h - scale.pad
    text(draw, (x1, y), "low", px, MUTED)
    text(draw, (x2, y), "high", px, MUTED, anchor="ra")
    img.paste(colourbar(CAM_COLORMAP, x2 - x1 + 1, bar_h), (x1, y + lh))
    return img


def render_cam(radiograph: Radiograph, analysis: Analysis, size: int | None = None, *, hints: Hints = NO_HINTS) -> Image.Image:
    """The CAM over the film (inferno colour map), its box (dotted) and a caption.

    The caption names the method actually used and its target class (with its probability), or says that the
    method is class-agnostic (EigenCAM), then the box threshold, above a colour bar. When ``analysis.cam`` is
    ``None`` the panel shows the dimmed film and says that no CAM was computed (then ``hints.no_cam``).

    Args:
        radiograph: the decoded film.
        analysis: its analysis; ``analysis.cam.heatmap`` is stretched from the model frame to the film.
        size: longest side of the panel in pixels (default :data:`DEFAULT_SIZE`).
        hints: what the interface tells a user to do.

    Returns:
        An RGB image of :func:`display_size` of the film.
    """
    return _cam(film_view(radiograph, analysis, size), analysis, hints)


# -------------------------------------------------------------------------------------------- all four
@dataclass(frozen=True)
class Panels:
    """The four panels of one analysis, the title line :func:`composite` writes above them and the footer lines
    (:func:`footer_lines`) it writes below them."""

    prediction: Image.Image
    comparison: Image.Image
    probabilities: Image.Image
    cam: Image.Image
    title: str = ""
    footer: tuple[str, ...] = field(default=(DISCLAIMER,))

    def as_dict(self) -> dict[str, Image.Image]:
        """``{"prediction", "comparison", "probabilities", "cam"}`` -> image, in that order."""
        return {name: getattr(self, name) for name in PANEL_NAMES}


def _title(analysis: Analysis) -> str:
    string = f"{analysis.image} \u00b7 {analysis.model.get('architecture') or 'model'}"
    if analysis.probabilities:
        top = analysis.top
        verdict = "positive" if top.positive else "below threshold"
        string += f" \u00b7 top finding: {pretty(top.label)} {top.probability:.2f} ({verdict})"
    return string


@lru_cache(maxsize=1)
def _provenance_notes() -> frozenset[str]:
    """The notes :mod:`cxrdemo.provenance` adds to an analysis of a training or validation image."""
    from ..provenance import DataSplits

    splits = DataSplits(frozenset({"train"}), frozenset({"validation"}))
    return frozenset(n for n in (splits.note("train"), splits.note("validation")) if n)


def footer_lines(analysis: Analysis) -> list[str]:
    """What every exported picture of ``analysis`` says below the panels: :data:`DISCLAIMER`, then the note that
    the model was trained or validated on this image, if it was, and the note on a centre crop (the dimmed border
    of the film panels), if the model cropped."""
    return [DISCLAIMER] + [n for n in analysis.notes if n in _provenance_notes() or n.startswith(CROP_NOTE)]


def panel_titles(analysis: Analysis | None = None) -> dict[str, str]:
    """:data:`PANEL_TITLES`, panel (d)'s naming the CAM method of ``analysis`` (``"(d) Grad-CAM++"``)."""
    titles = dict(PANEL_TITLES)
    if analysis is not None and analysis.cam is not None:
        titles["cam"] = f"(d) {method_name(analysis.cam.method)}"
    return titles


def composite(panels: Panels, footer_lines: Sequence[str] | None = None) -> Image.Image:
    """The four panels in a 2x2 grid (prediction, comparison / probabilities, CAM) under the title line and above
    the footer lines.

    Cells are as large as the largest panel; smaller panels are centred in theirs. The title (image name, model
    architecture, top finding) is ``panels.title``; none is drawn if empty. The footer is ``footer_lines``, by
    default ``panels.footer`` (:data:`DISCLAIMER` and the training/validation note, see :func:`footer_lines`);
    lines too long for the width are wrapped.
    """
    images = [panels.prediction, panels.comparison, panels.probabilities, panels.cam]
    cell_w = max(im.width for im in images)
    cell_h = max(im.height for im in images)
    scale = scale_for(max(cell_w, cell_h))
    gap = max(2, scale.pad)
    title_h = line_height(scale.font) + 2 * scale.pad if panels.title else 0
    out = Image.new("RGB", (2 * cell_w + 3 * gap, title_h + 2 * cell_h + 3 * gap), BACKGROUND)
    if panels.title:
        text(ImageDraw.Draw(out), (gap + scale.pad, scale.pad), panels.title, scale.font, TEXT, bold=True, cache=False)
    for i, im in enumerate(images):
        col, row = i % 2, i // 2
        x = gap + col * (cell_w + gap) + (cell_w - im.width) // 2
        y = title_h + gap + row * (cell_h + gap) + (cell_h - im.height) // 2
        out.paste(im, (x, y))
    return with_text_strip(out, panels.footer if footer_lines is None else footer_lines, side=max(cell_w, cell_h))

