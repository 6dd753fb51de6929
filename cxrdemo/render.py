"""The four panels a user sees, as PIL images, and a 2x2 composite of them for reports.

- :func:`render_prediction`: the radiograph with the model's box(es), label and score;
- :func:`render_comparison`: ground truth vs the model's box vs the CAM box, IoUs in the legend;
- :func:`render_probabilities`: every class ranked, probability written, decision threshold ticked;
- :func:`render_cam`: the Grad-CAM overlay with its box and a caption;
- :func:`render_panels` (all four, the film resized once) and :func:`composite` (2x2 grid under a title).

Cheap by construction (issue 6): the film is resized once (OpenCV) and copied per panel; boxes, text and legends
are plain PIL (dashes pasted through cached masks, text from cached glyph masks: FreeType is otherwise the slowest
part); the CAM is coloured and blended with uint8 OpenCV lookup tables. No matplotlib figure is ever built:
matplotlib only supplies the DejaVu Sans font files (found without importing it) and, on the first CAM, the colour
map's 256 colours. :func:`render_panels` draws two of the four panels on a two-thread pool while the calling thread
draws the other two (PIL and OpenCV release the GIL while filling pixels: a third less wall time on 2 cores).

Display size: the film's longest side becomes ``size`` (aspect kept) in one resize: big films are shrunk, small
ones (256 px copies) enlarged to ``size`` and never beyond, so text and lines keep one legible scale. Line widths
and font sizes follow the panel's longest side (legible at 512 and at 1024 px).

Colours are Okabe-Ito, each paired with its own line style so the panels read in grayscale and for colour-blind
users: ground truth bluish green, solid; model box orange, dashed; CAM box sky blue, dotted (all with a thin dark
halo, visible on bright and dark film). Text always sits on a dark backdrop, inside the panel.

Every function is pure; the only module state is caches of immutable constants (fonts, text masks, dash masks,
colour tables) and the panel pool, so concurrent calls from several threads are safe.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .boxes import Box
from .imaging import Radiograph
from .results import Analysis, ClassProbability

__all__ = [
    "CAM",
    "DEFAULT_SIZE",
    "MODEL",
    "TRUTH",
    "BoxStyle",
    "Panels",
    "composite",
    "display_size",
    "render_cam",
    "render_comparison",
    "render_panels",
    "render_prediction",
    "render_probabilities",
]

RGB = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2, inclusive pixels


@dataclass(frozen=True)
class BoxStyle:
    """How one kind of box is drawn: its legend name, colour and line style (``solid``/``dashed``/``dotted``)."""

    name: str
    colour: RGB
    line: str


#: Display longest side when the caller gives none.
DEFAULT_SIZE = 768
#: Most model boxes drawn on the prediction panel (readability).
MAX_PREDICTION_BOXES = 3
TRUTH = BoxStyle("ground truth", (0x00, 0x9E, 0x73), "solid")  # Okabe-Ito bluish green
MODEL = BoxStyle("model box", (0xE6, 0x9F, 0x00), "dashed")  # Okabe-Ito orange
CAM = BoxStyle("CAM box", (0x56, 0xB4, 0xE9), "dotted")  # Okabe-Ito sky blue
POSITIVE: RGB = MODEL.colour  # a positive finding's bar: the model's colour
NEGATIVE: RGB = (0x70, 0x70, 0x70)
TEXT: RGB = (255, 255, 255)
MUTED: RGB = (185, 185, 185)
HALO: RGB = (0, 0, 0)
GRID: RGB = (58, 58, 58)
BACKGROUND: RGB = (18, 18, 18)
BACKDROP = (0, 0, 0, 185)  # behind text on the film (alpha-blended)
#: Perceptually uniform, colour-blind-safe map for the CAM; it holds no sky blue, so the CAM box stands out.
CAM_COLORMAP = "inferno"
#: CAM opacity grows with the map's value (min, max): the film shows through where the model did not look.
CAM_ALPHA = (0.12, 0.62)


# ------------------------------------------------------------------------------------------- cached constants
@lru_cache(maxsize=1)
def _font_dir() -> Path | None:
    """matplotlib's ``mpl-data/fonts/ttf`` folder, located without importing matplotlib (slow to import)."""
    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(root) / "mpl-data" / "fonts" / "ttf"
        if (folder / "DejaVuSans.ttf").is_file():
            return folder
    return None


@lru_cache(maxsize=64)
def _font(px: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (matplotlib's) at ``px`` pixels; Pillow's default font if matplotlib's files are missing."""
    folder = _font_dir()
    if folder is not None:
        return ImageFont.truetype(str(folder / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), px)
    return ImageFont.load_default(px)


@lru_cache(maxsize=64)
def _line_height(px: int) -> int:
    """Ascender to descender of the font at ``px`` (one text line)."""
    ascent, descent = _font(px).getmetrics()
    return ascent + descent


@lru_cache(maxsize=4096)
def _text_width(text: str, px: int, bold: bool = False) -> int:
    return int(math.ceil(_font(px, bold).getlength(text)))


@lru_cache(maxsize=1024)
def _glyphs(text: str, px: int, bold: bool) -> tuple[Image.Image, int, int]:
    """``text`` rendered once as an 8-bit mask, and the mask's offset from the left/ascender anchor."""
    font = _font(px, bold)
    left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor="la"))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255, anchor="la")
    mask.load()
    return mask, left, top


@lru_cache(maxsize=1)
def _cam_lut() -> np.ndarray:
    """The CAM colour map as a ``(256, 1, 3)`` uint8 RGB table (from matplotlib, once)."""
    from matplotlib import colormaps

    rgba = colormaps[CAM_COLORMAP](np.linspace(0.0, 1.0, 256))
    return np.ascontiguousarray((rgba[:, :3] * 255.0).round().astype(np.uint8).reshape(256, 1, 3))


@lru_cache(maxsize=1)
def _cam_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per map level: ``colour * alpha`` as a ``(256, 1, 3)`` table and ``255 * (1 - alpha)`` as a ``(256,)`` one
    (uint8 OpenCV LUTs)."""
    alpha = CAM_ALPHA[0] + (CAM_ALPHA[1] - CAM_ALPHA[0]) * np.arange(256) / 255.0
    colour = np.round(_cam_lut()[:, 0, :] * alpha[:, None]).astype(np.uint8).reshape(256, 1, 3)
    keep = np.round(255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(colour), keep


@lru_cache(maxsize=16)
def _colourbar(width: int, height: int) -> Image.Image:
    """A ``width`` x ``height`` strip of the CAM colour map, low (left) to high (right)."""
    row = _cam_lut()[(np.arange(width) * 256) // max(width, 1), 0, :]
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(row, (height, width, 3))), "RGB")


@dataclass(frozen=True)
class _Scale:
    """Sizes that follow the panel size: font pixels (normal, small), line width, padding, margin."""

    font: int
    small: int
    line: int
    pad: int
    margin: int


@lru_cache(maxsize=32)
def _scale(side: int) -> _Scale:
    font = max(12, round(side / 42))
    return _Scale(
        font=font,
        small=max(11, round(font * 0.85)),
        line=max(2, round(side / 192)),
        pad=max(2, font // 4),
        margin=max(4, font // 2),
    )


# ------------------------------------------------------------------------------------------------ the film
def display_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` of a ``width`` x ``height`` image shown with its longest side ``size`` (aspect kept)."""
    if size < 16:
        raise ValueError(f"display size {size} is too small; use at least 16 px")
    factor = size / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


@dataclass(frozen=True)
class _View:
    """The film resized once for display, as an RGB PIL image and a grayscale array (neither is ever written to:
    panels copy them), and how the analysis' pixels map onto it."""

    film: Image.Image
    gray: np.ndarray
    sx: float
    sy: float
    scale: _Scale

    @property
    def size(self) -> tuple[int, int]:
        return self.film.size

    def rect(self, box: Box) -> Rect | None:
        """A box in original pixels -> inclusive display rectangle inside the panel (``None`` if empty)."""
        w, h = self.size
        x1 = min(max(round(box.x1 * self.sx), 0), w - 1)
        y1 = min(max(round(box.y1 * self.sy), 0), h - 1)
        x2 = min(max(round(box.x2 * self.sx) - 1, 0), w - 1)
        y2 = min(max(round(box.y2 * self.sy) - 1, 0), h - 1)
        if x2 < x1 or y2 < y1:
            return None
        return (x1, y1, x2, y2)


def _view(radiograph: Radiograph, analysis: Analysis, size: int | None) -> _View:
    pixels = np.ascontiguousarray(radiograph.pixels, dtype=np.uint8)
    if pixels.ndim != 2:
        raise ValueError(f"radiograph pixels must be (H, W) uint8, got shape {pixels.shape}")
    h, w = pixels.shape
    dw, dh = display_size(w, h, size or DEFAULT_SIZE)
    if (dw, dh) != (w, h):
        # Area averaging where bilinear would alias (shrinking 2x or more); bilinear, 4x cheaper, otherwise.
        interpolation = cv2.INTER_AREA if 2 * dw <= w else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (dw, dh), interpolation=interpolation)
    film = Image.fromarray(pixels, "L").convert("RGB")  # much cheaper than building RGB in numpy first
    # Boxes are in the analysis' original pixels (those of this film, normally).
    sx, sy = dw / max(analysis.width, 1), dh / max(analysis.height, 1)
    return _View(film, pixels, sx, sy, _scale(max(dw, dh)))


# ---------------------------------------------------------------------------------------------- boxes
def _pattern(line: str, width: int) -> tuple[int, int] | None:
    """``(on, off)`` pixel lengths of a line style at a line width; ``None`` for solid."""
    if line == "dashed":
        return (5 * width, 3 * width)
    if line == "dotted":
        return (width, width + 1)
    return None


def _runs(length: int, pattern: tuple[int, int] | None) -> np.ndarray | None:
    """Where a line style draws along ``length`` pixels (the pattern starts on, so corners are drawn)."""
    if pattern is None:
        return None
    on, off = pattern
    return (np.arange(length) % (on + off)) < on


@lru_cache(maxsize=64)
def _dash_mask(line: str, width: int, thickness: int, span: int, horizontal: bool) -> Image.Image:
    """An 8-bit mask of a dashed/dotted stroke drawn ``width`` thick: ``span`` long, ``thickness`` across."""
    runs = _runs(span, _pattern(line, width))
    assert runs is not None, "solid lines need no mask"
    band = np.repeat((runs.astype(np.uint8) * 255)[None, :], thickness, axis=0)
    return Image.fromarray(band if horizontal else np.ascontiguousarray(band.T), "L")


def _stroke(img: Image.Image, rect: Rect, colour: RGB, line: str, width: int, horizontal: bool) -> None:
    """Paint ``rect`` (clipped to the image) in ``colour``, dashed along x or y as ``line`` says at ``width``.

    The pattern starts at the rectangle's own first pixel, so corners are always drawn.
    """
    x1, y1, x2, y2 = rect
    w, h = img.size
    xa, ya, xb, yb = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if xa > xb or ya > yb:
        return
    if _pattern(line, width) is None:
        img.paste(colour, (xa, ya, xb + 1, yb + 1))
        return
    length = (x2 - x1 + 1) if horizontal else (y2 - y1 + 1)
    span = 1 << max(10, (length - 1).bit_length())  # few cached masks: power-of-two lengths
    thickness = (y2 - y1 + 1) if horizontal else (x2 - x1 + 1)
    mask = _dash_mask(line, width, thickness, span, horizontal)
    img.paste(colour, (xa, ya, xb + 1, yb + 1), mask.crop((xa - x1, ya - y1, xb - x1 + 1, yb - y1 + 1)))


def _paint_box(img: Image.Image, rect: Rect, style: BoxStyle, width: int) -> None:
    """Draw ``rect``'s outline inside it, ``width`` thick, in ``style``, edged by a 1 px dark halo.

    The halo runs along both sides of each dash but not into the gaps, so the gaps show the film and dashes and
    dots keep their colour.
    """
    x1, y1, x2, y2 = rect
    w = max(1, min(width, (x2 - x1 + 2) // 2, (y2 - y1 + 2) // 2))
    for colour, g in ((HALO, 1), (style.colour, 0)):
        _stroke(img, (x1, y1 - g, x2, y1 + w - 1 + g), colour, style.line, w, True)  # top
        _stroke(img, (x1, y2 - w + 1 - g, x2, y2 + g), colour, style.line, w, True)  # bottom
        _stroke(img, (x1 - g, y1, x1 + w - 1 + g, y2), colour, style.line, w, False)  # left
        _stroke(img, (x2 - w + 1 - g, y1, x2 + g, y2), colour, style.line, w, False)  # right


# ----------------------------------------------------------------------------------------------- text
def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    px: int,
    colour: RGB,
    *,
    bold: bool = False,
    anchor: str = "la",
    cache: bool = True,
) -> None:
    """Draw ``text``; ``anchor`` is PIL's: ``l``/``m``/``r`` then ``a`` (ascender) or ``m`` (middle).

    The rendered mask is cached (``cache=False`` for long one-off strings such as a title).
    """
    if not text:
        return
    if not cache:
        draw.text(xy, text, font=_font(px, bold), fill=colour, anchor=anchor)
        return
    mask, left, top = _glyphs(text, px, bold)
    x, y = xy
    if anchor[0] == "r":
        x -= _text_width(text, px, bold)
    elif anchor[0] == "m":
        x -= _text_width(text, px, bold) / 2
    if anchor[1] == "m":
        y -= _line_height(px) / 2
    draw.bitmap((round(x) + left, round(y) + top), mask, fill=colour)


def _overlap(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    return w * h if w > 0 and h > 0 else 0


def _fit(x: int, y: int, w: int, h: int, canvas: tuple[int, int]) -> Rect:
    """A ``w`` x ``h`` rectangle at ``(x, y)`` moved inside the canvas (top-left wins when it cannot fit)."""
    x = max(0, min(x, canvas[0] - w))
    y = max(0, min(y, canvas[1] - h))
    return (x, y, x + w - 1, y + h - 1)


def _place_label(anchor: Rect, w: int, h: int, canvas: tuple[int, int], taken: Sequence[Rect], line: int) -> Rect:
    """Where a ``w`` x ``h`` label of box ``anchor`` goes: above it, else below it, else inside its top / bottom.

    Spots that would leave the canvas vertically are skipped (the label flips to the other side at an edge);
    among the rest, the first that covers no earlier label. Horizontally the label is slid inside the canvas.
    """
    x1, y1, x2, y2 = anchor
    inset = line + 1
    spots = [(x1, y1 - h - 1), (x1, y2 + 2), (x1 + inset, y1 + inset), (x1 + inset, y2 - inset - h + 1)]
    fitting = [_fit(x, y, w, h, canvas) for x, y in spots if y >= 0 and y + h <= canvas[1]]
    fitting = fitting or [_fit(spots[2][0], spots[2][1], w, h, canvas)]
    for spot in fitting:
        if not any(_overlap(spot, t) for t in taken):
            return spot
    return fitting[0]


def _place_block(w: int, h: int, canvas: tuple[int, int], avoid: Iterable[Rect], margin: int) -> Rect:
    """The corner for a ``w`` x ``h`` block (legend, caption) that hides the least of ``avoid``; top corners first."""
    cw, ch = canvas
    corners = [(margin, margin), (cw - w - margin, margin), (margin, ch - h - margin), (cw - w - margin, ch - h - margin)]
    spots = [_fit(x, y, w, h, canvas) for x, y in corners]
    avoid = list(avoid)
    return min(spots, key=lambda s: sum(_overlap(s, a) for a in avoid))


@dataclass(frozen=True)
class _Row:
    """One legend/caption line: text in a colour, with an optional line-style key, bold or not."""

    text: str
    colour: RGB = TEXT
    key: BoxStyle | None = None
    bold: bool = False


def _block_size(rows: Sequence[_Row], px: int, scale: _Scale) -> tuple[int, int, int]:
    """``(width, height, key_length)`` of a block of rows on its backdrop."""
    key_len = round(2.6 * px) if any(r.key for r in rows) else 0
    widths = [_text_width(r.text, px, r.bold) + (key_len + scale.pad if r.key else 0) for r in rows]
    return max(widths, default=0) + 2 * scale.pad, len(rows) * _line_height(px) + 2 * scale.pad, key_len


def _swatch(draw: ImageDraw.ImageDraw, x: int, y_mid: int, length: int, style: BoxStyle) -> None:
    """A short horizontal line in a box style, 2 px thick (the legend's key)."""
    on, off = _pattern(style.line, 2) or (length, 0)
    for a in range(x, x + length, on + off):
        draw.rectangle((a, y_mid - 1, min(a + on, x + length) - 1, y_mid), fill=style.colour)


def _draw_block(draw: ImageDraw.ImageDraw, spot: Rect, rows: Sequence[_Row], px: int, scale: _Scale, key_len: int) -> None:
    """Rows of text (with their keys) from the top of ``spot``, on a dark backdrop filling ``spot``."""
    draw.rectangle(spot, fill=BACKDROP)
    line_h = _line_height(px)
    x, y = spot[0] + scale.pad, spot[1] + scale.pad
    for row in rows:
        tx = x
        if row.key is not None:
            _swatch(draw, x, y + line_h // 2, key_len, row.key)
            tx = x + key_len + scale.pad
        _text(draw, (tx, y), row.text, px, row.colour, bold=row.bold)
        y += line_h


def _draw_label(draw: ImageDraw.ImageDraw, anchor: Rect, text: str, colour: RGB, view: _View, taken: list[Rect]) -> None:
    """A box's label beside it, inside the panel, clear of the labels in ``taken`` if possible (and added to it)."""
    rows = [_Row(text, colour, bold=True)]
    px = view.scale.small
    w, h, _ = _block_size(rows, px, view.scale)
    spot = _place_label(anchor, w, h, view.size, taken, view.scale.line)
    _draw_block(draw, spot, rows, px, view.scale, 0)
    taken.append(spot)


def _caption(draw: ImageDraw.ImageDraw, rows: Sequence[_Row], view: _View, avoid: Iterable[Rect]) -> None:
    """A caption/legend block in the corner that hides the least of ``avoid``."""
    px = view.scale.small
    w, h, key_len = _block_size(rows, px, view.scale)
    _draw_block(draw, _place_block(w, h, view.size, avoid, view.scale.margin), rows, px, view.scale, key_len)


def _pretty(label: str) -> str:
    return label.replace("_", " ")


def _probability_of(analysis: Analysis, label: str) -> ClassProbability | None:
    return next((p for p in analysis.probabilities if p.label == label), None)


def _method_name(method: str) -> str:
    from .cams import CAM_METHOD_NAMES

    return CAM_METHOD_NAMES.get(method, method)


def _box_text(box: Box) -> str:
    return _pretty(box.label) + (f" {box.score:.2f}" if box.score is not None else "")


def _canvas(img: Image.Image) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """An image and a drawer that alpha-blends (for the translucent text backdrops)."""
    return img, ImageDraw.Draw(img, "RGBA")


# ----------------------------------------------------------------------------------------- (a) prediction
def _prediction_boxes(analysis: Analysis) -> tuple[list[Box], int]:
    """The model boxes to draw (positives, capped; else the top one) and how many boxes are positive."""
    positives = []
    for box in analysis.boxes:
        p = _probability_of(analysis, box.label)
        if (box.score or 0.0) >= (p.threshold if p is not None else 0.5):
            positives.append(box)
    return positives[:MAX_PREDICTION_BOXES] or analysis.boxes[:1], len(positives)


def _prediction(view: _View, analysis: Analysis) -> Image.Image:
    shown, n_positive = _prediction_boxes(analysis)
    drawn = [(b, r) for b in shown if (r := view.rect(b)) is not None]
    img, draw = _canvas(view.film.copy())
    for _, rect in drawn:
        _paint_box(img, rect, MODEL, view.scale.line)
    taken: list[Rect] = []
    for box, rect in drawn:
        _draw_label(draw, rect, _box_text(box), MODEL.colour, view, taken)
    if not analysis.boxes:
        note = "this model predicts no box"
    elif n_positive == 0:
        note = "no box class reaches its threshold: top-1 shown"
    elif n_positive > len(shown):
        note = f"{n_positive} box classes reach their threshold: top {len(shown)} shown"
    else:
        note = f"{n_positive} of {len(analysis.boxes)} box classes reach their threshold"
    rows = [_Row("model box: class, probability", MODEL.colour, MODEL), _Row(note, MUTED)]
    _caption(draw, rows, view, [r for _, r in drawn] + taken)
    return img


def render_prediction(radiograph: Radiograph, analysis: Analysis, size: int | None = None) -> Image.Image:
    """The radiograph with the model's box(es), each labelled with its class and probability.

    Boxes whose class probability reaches that class's decision threshold are drawn (at most
    :data:`MAX_PREDICTION_BOXES`, highest first); when none does, the top-1 box. A caption says which.

    Args:
        radiograph: the decoded film (any size).
        analysis: the model's analysis of it (boxes in the film's original pixels).
        size: longest side of the panel in pixels (default :data:`DEFAULT_SIZE`).

    Returns:
        An RGB image of :func:`display_size` of the film.
    """
    return _prediction(_view(radiograph, analysis, size), analysis)


# ----------------------------------------------------------------------------------------- (b) comparison
def _comparison_rows(analysis: Analysis) -> list[_Row]:
    """The comparison's legend: with ground truth, the three keys and one IoU line per ground-truth box; without,
    the no-ground-truth message and what the model's top box and the CAM box are."""
    cam = analysis.cam
    method = _method_name(cam.method) if cam is not None else ""
    if not analysis.ious:
        top = analysis.boxes[0] if analysis.boxes else None
        if cam is None:
            cam_text = "no CAM computed"
        elif cam.box is None:
            cam_text = f"{CAM.name}: no {method} region \u2265 {cam.threshold}"
        else:
            cam_text = f"{CAM.name}: {method} of {_pretty(cam.target)}"
        return [
            _Row("no ground truth for this image: draw or type a box", TEXT, bold=True),
            _Row(f"{MODEL.name}: {_box_text(top)}" if top else "no model box", MODEL.colour, MODEL),
            _Row(cam_text, CAM.colour, CAM),
        ]
    cam_text = f"{CAM.name}, same class ({method}, t={cam.threshold})" if cam is not None else "no CAM computed"
    rows = [
        _Row(f"{TRUTH.name} (radiologist)", TRUTH.colour, TRUTH),
        _Row(f"{MODEL.name}, same class", MODEL.colour, MODEL),
        _Row(cam_text, CAM.colour, CAM),
    ]
    labels = [r.label for r in analysis.ious]
    for i, row in enumerate(analysis.ious):
        name = _pretty(row.label)
        if labels.count(row.label) > 1:
            name += f" #{labels[: i + 1].count(row.label)}"
        model_iou = "no box" if row.box_iou is None else f"{row.box_iou:.2f}"
        cam_iou = "n/a" if row.cam_iou is None else f"{row.cam_iou:.2f}"
        rows.append(_Row(f"{name}: IoU model {model_iou} \u00b7 CAM {cam_iou}", TEXT, bold=True))
    return rows


def _comparison_boxes(analysis: Analysis) -> list[tuple[Box, BoxStyle]]:
    """The boxes of the comparison, in drawing order, each once."""
    cam_box = analysis.cam.box if analysis.cam is not None else None
    if analysis.ious:
        pairs = [(b, s) for r in analysis.ious for b, s in ((r.truth, TRUTH), (r.box, MODEL), (r.cam_box, CAM))]
    else:
        pairs = [(analysis.boxes[0] if analysis.boxes else None, MODEL), (cam_box, CAM)]
    unique: list[tuple[Box, BoxStyle]] = []
    for box, style in pairs:
        if box is not None and (box, style) not in unique:
            unique.append((box, style))
    return unique


def _comparison(view: _View, analysis: Analysis) -> Image.Image:
    drawn = [(b, s, r) for b, s in _comparison_boxes(analysis) if (r := view.rect(b)) is not None]
    img, draw = _canvas(view.film.copy())
    for _, style, rect in drawn:
        _paint_box(img, rect, style, view.scale.line)
    # Name the truth boxes; name every box when several classes are compared at once.
    several = len({b.label for b, s, _ in drawn if s is TRUTH}) > 1
    taken: list[Rect] = []
    for box, style, rect in drawn:
        if style is TRUTH or several:
            _draw_label(draw, rect, _pretty(box.label), style.colour, view, taken)
    _caption(draw, _comparison_rows(analysis), view, [r for _, _, r in drawn] + taken)
    return img


def render_comparison(radiograph: Radiograph, analysis: Analysis, size: int | None = None) -> Image.Image:
    """Ground truth vs the model's box vs the CAM box, with each ground-truth box's IoUs in the legend.

    For every row of ``analysis.ious``: the ground-truth box (solid), the model's box of that class (dashed) and
    the CAM box of that class (dotted). Without ground truth the panel says so and still shows the model's top box
    and the CAM box.

    Args:
        radiograph: the decoded film.
        analysis: its analysis (``ious``, ``boxes``, ``cam``).
        size: longest side of the panel in pixels (default :data:`DEFAULT_SIZE`).

    Returns:
        An RGB image of :func:`display_size` of the film.
    """
    return _comparison(_view(radiograph, analysis, size), analysis)


# -------------------------------------------------------------------------------------- (c) probabilities
def _chart_header(draw: ImageDraw.ImageDraw, scale: _Scale) -> int:
    """Title and key of the chart; returns the y where the bars may start."""
    m, pad, px = scale.margin, scale.pad, scale.small
    _text(draw, (m, m), "Findings ranked by probability", scale.font, TEXT, bold=True)
    y = m + _line_height(scale.font) + pad
    h = _line_height(px)
    x = m
    for text, colour in (("positive (\u2265 threshold)", POSITIVE), ("negative", NEGATIVE)):
        draw.rectangle((x, y + h // 4, x + h // 2, y + 3 * h // 4), fill=colour)
        x += h // 2 + 1 + pad
        _text(draw, (x, y), text, px, TEXT)
        x += _text_width(text, px) + 3 * pad
    tick_w = max(2, scale.line)
    draw.rectangle((x, y + 1, x + tick_w - 1, y + h - 1), fill=TEXT)
    _text(draw, (x + tick_w + pad, y), "decision threshold", px, TEXT)
    return y + h + 2 * pad


def render_probabilities(analysis: Analysis, size: int | None = None) -> Image.Image:
    """A ranked horizontal bar chart of every class's probability, each decision threshold ticked on its bar.

    Positive findings (probability at or above their threshold) have orange bars and bold white names, negatives
    grey bars and grey names; the value is written at the right of each row.

    Args:
        analysis: the analysis (its ``probabilities`` are already ranked).
        size: side of the square chart in pixels (default :data:`DEFAULT_SIZE`).

    Returns:
        A ``size`` x ``size`` RGB image.
    """
    side = size or DEFAULT_SIZE
    if side < 16:
        raise ValueError(f"display size {side} is too small; use at least 16 px")
    scale = _scale(side)
    m, pad = scale.margin, scale.pad
    img = Image.new("RGB", (side, side), BACKGROUND)
    draw = ImageDraw.Draw(img)
    top = _chart_header(draw, scale)
    bottom = side - m - _line_height(scale.small) - pad  # room for the axis numbers
    rows = analysis.probabilities
    if not rows:
        _text(draw, (m, top), "no probabilities", scale.small, MUTED)
        return img

    row_h = (bottom - top) / len(rows)
    px = max(8, min(scale.font, int(row_h * 0.6)))
    label_w = max(_text_width(_pretty(r.label), px, True) for r in rows) + 2 * pad
    value_w = _text_width("0.00", px, True) + 2 * pad
    x1 = side - m - value_w
    x0 = min(m + label_w, x1 - 10)  # absurdly narrow: the bars win over long names
    span = x1 - x0
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):  # faint grid and axis numbers
        gx = x0 + round(v * span)
        draw.line((gx, top, gx, bottom), fill=GRID, width=1)
        _text(draw, (gx, bottom + pad), f"{v:g}", scale.small, MUTED, anchor="ma")
    bar_h = max(2, int(row_h * 0.62))
    tick_w = max(2, scale.line)
    for i, r in enumerate(rows):
        y_mid = round(top + (i + 0.5) * row_h)
        by1 = y_mid - bar_h // 2
        by2 = by1 + bar_h - 1
        value = min(max(float(r.probability), 0.0), 1.0)
        text_colour = TEXT if r.positive else MUTED
        _text(draw, (x0 - pad, y_mid), _pretty(r.label), px, text_colour, bold=r.positive, anchor="rm")
        if value > 0:
            draw.rectangle((x0, by1, x0 + max(1, round(value * span)) - 1, by2), fill=POSITIVE if r.positive else NEGATIVE)
        shown = "<0.01" if 0 < value < 0.005 else f"{value:.2f}"
        _text(draw, (x1 + pad, y_mid), shown, px, text_colour, bold=r.positive, anchor="lm")
        tx = x0 + round(min(max(float(r.threshold), 0.0), 1.0) * span) - tick_w // 2
        draw.rectangle((tx - 1, by1 - pad, tx + tick_w, by2 + pad), fill=HALO)
        draw.rectangle((tx, by1 - pad, tx + tick_w - 1, by2 + pad), fill=TEXT)
    return img


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
    colour, keep = _cam_tables()
    film = cv2.multiply(gray, cv2.LUT(level, keep), scale=1 / 255)
    blended = cv2.add(cv2.applyColorMap(level, colour), cv2.cvtColor(film, cv2.COLOR_GRAY2RGB))
    return Image.fromarray(blended, "RGB")


def _no_cam(view: _View) -> Image.Image:
    img, draw = _canvas(Image.fromarray(cv2.convertScaleAbs(view.gray, alpha=0.4), "L").convert("RGB"))
    rows = [_Row("no CAM was computed", TEXT, bold=True), _Row("pick a CAM method to see where the model looked", MUTED)]
    px = view.scale.font
    w, h, _ = _block_size(rows, px, view.scale)
    spot = _fit(view.size[0] // 2 - w // 2, view.size[1] // 2 - h // 2, w, h, view.size)
    _draw_block(draw, spot, rows, px, view.scale, 0)
    return img


def _cam(view: _View, analysis: Analysis) -> Image.Image:
    cam = analysis.cam
    if cam is None:
        return _no_cam(view)
    scale = view.scale
    img, draw = _canvas(_overlay(view.gray, cam.heatmap))
    rect = view.rect(cam.box) if cam.box is not None else None
    if rect is not None:
        _paint_box(img, rect, CAM, scale.line)
    p = _probability_of(analysis, cam.target)
    target = _pretty(cam.target) + (f" (p {p.probability:.2f})" if p is not None else "")
    box_text = f"{CAM.name}: map \u2265 {cam.threshold}/255" if rect else f"no region \u2265 {cam.threshold}/255: no box"
    rows = [_Row(f"{_method_name(cam.method)} \u00b7 {target}", TEXT, bold=True), _Row(box_text, CAM.colour, CAM)]
    px = scale.small
    w, h, key_len = _block_size(rows, px, scale)
    line_h, bar_h = _line_height(px), max(4, px // 2)
    w = max(w, 8 * px)
    spot = _place_block(w, h + line_h + bar_h + scale.pad, view.size, [rect] if rect else [], scale.margin)
    _draw_block(draw, spot, rows, px, scale, key_len)
    x1, x2, y = spot[0] + scale.pad, spot[2] - scale.pad, spot[1] + h - scale.pad
    _text(draw, (x1, y), "low", px, MUTED)
    _text(draw, (x2, y), "high", px, MUTED, anchor="ra")
    img.paste(_colourbar(x2 - x1 + 1, bar_h), (x1, y + line_h))
    return img


def render_cam(radiograph: Radiograph, analysis: Analysis, size: int | None = None) -> Image.Image:
    """The Grad-CAM map over the film (inferno colour map), its box (dotted) and a caption.

    The caption names the method, the target class (with its probability) and the box threshold, above a colour
    bar. When ``analysis.cam`` is ``None`` the panel shows the dimmed film and says that no CAM was computed.

    Args:
        radiograph: the decoded film.
        analysis: its analysis; ``analysis.cam.heatmap`` is stretched from the model frame to the film.
        size: longest side of the panel in pixels (default :data:`DEFAULT_SIZE`).

    Returns:
        An RGB image of :func:`display_size` of the film.
    """
    return _cam(_view(radiograph, analysis, size), analysis)


# -------------------------------------------------------------------------------------------- all four
@dataclass(frozen=True)
class Panels:
    """The four panels of one analysis, and the title line :func:`composite` writes above them."""

    prediction: Image.Image
    comparison: Image.Image
    probabilities: Image.Image
    cam: Image.Image
    title: str = ""

    def as_dict(self) -> dict[str, Image.Image]:
        """``{"prediction", "comparison", "probabilities", "cam"}`` -> image, in that order."""
        return {
            "prediction": self.prediction,
            "comparison": self.comparison,
            "probabilities": self.probabilities,
            "cam": self.cam,
        }


def _title(analysis: Analysis) -> str:
    text = f"{analysis.image} \u00b7 {analysis.model.get('architecture') or 'model'}"
    if analysis.probabilities:
        top = analysis.top
        verdict = "positive" if top.positive else "below threshold"
        text += f" \u00b7 top finding: {_pretty(top.label)} {top.probability:.2f} ({verdict})"
    return text


def render_panels(radiograph: Radiograph, analysis: Analysis, size: int = DEFAULT_SIZE) -> Panels:
    """All four panels of one analysis, the film resized only once.

    Args:
        radiograph: the decoded film.
        analysis: its analysis.
        size: longest side of the film panels, and side of the square chart, in pixels.

    Returns:
        :class:`Panels` with the prediction, comparison, probability and CAM panels (RGB) and the title line
        (image name, model architecture, top finding) that :func:`composite` writes.
    """
    view = _view(radiograph, analysis, size)
    pool = _panel_pool()
    if pool is None:
        return Panels(
            prediction=_prediction(view, analysis),
            comparison=_comparison(view, analysis),
            probabilities=render_probabilities(analysis, size),
            cam=_cam(view, analysis),
            title=_title(analysis),
        )
    # The panels are independent and only read the view; PIL and OpenCV release the GIL while they fill pixels, so
    # two panels drawn by the pool while this thread draws the other two cut the wall time by a third on 2 cores.
    cam = pool.submit(_cam, view, analysis)
    prediction = pool.submit(_prediction, view, analysis)
    comparison = _comparison(view, analysis)
    probabilities = render_probabilities(analysis, size)
    return Panels(
        prediction=prediction.result(),
        comparison=comparison,
        probabilities=probabilities,
        cam=cam.result(),
        title=_title(analysis),
    )


_POOL_LOCK = threading.Lock()
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _panel_pool() -> ThreadPoolExecutor | None:
    """Two worker threads that draw panels (``None`` on a single core), made once per process (a forked child,
    whose copy of the pool has no threads, makes its own)."""
    global _POOL
    if (os.cpu_count() or 1) < 2:
        return None
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="cxrdemo-render"))
        return _POOL[1]


def composite(panels: Panels) -> Image.Image:
    """The four panels in a 2x2 grid (prediction, comparison / probabilities, CAM) under the title line.

    Cells are as large as the largest panel; smaller panels are centred in theirs. The title (image name, model
    architecture, top finding) is the one :func:`render_panels` put in ``panels.title``; none is drawn if empty.
    """
    images = [panels.prediction, panels.comparison, panels.probabilities, panels.cam]
    cell_w = max(im.width for im in images)
    cell_h = max(im.height for im in images)
    scale = _scale(max(cell_w, cell_h))
    gap = max(2, scale.pad)
    title_h = _line_height(scale.font) + 2 * scale.pad if panels.title else 0
    out = Image.new("RGB", (2 * cell_w + 3 * gap, title_h + 2 * cell_h + 3 * gap), BACKGROUND)
    if panels.title:
        _text(ImageDraw.Draw(out), (gap + scale.pad, scale.pad), panels.title, scale.font, TEXT, bold=True, cache=False)
    for i, im in enumerate(images):
        col, row = i % 2, i // 2
        x = gap + col * (cell_w + gap) + (cell_w - im.width) // 2
        y = title_h + gap + row * (cell_h + gap) + (cell_h - im.height) // 2
        out.paste(im, (x, y))
    return out
