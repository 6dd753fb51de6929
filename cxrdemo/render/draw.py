"""The drawing kit under the panels: fonts and cached text, dashed strokes and boxes, label and block placement,
colour-map tables, a colour bar, and the sizes that follow a panel's size. Nothing here knows what is drawn.

Cheap by construction: boxes, text and legends are plain PIL; dashes are pasted through cached masks and
text through cached glyph masks (FreeType is otherwise the slowest part); colour maps become uint8 OpenCV lookup
tables. No matplotlib figure is ever built: matplotlib only supplies the DejaVu Sans font files (found without
importing it) and, on first use, a colour map's 256 colours.

Every function is pure; the only module state is caches of immutable constants (fonts, text masks, dash masks,
colour tables), so concurrent calls from several threads are safe.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2, inclusive pixels
Size = tuple[int, int]  # width, height

TEXT: RGB = (255, 255, 255)
MUTED: RGB = (185, 185, 185)
HALO: RGB = (0, 0, 0)
GRID: RGB = (58, 58, 58)
BACKGROUND: RGB = (18, 18, 18)
BACKDROP = (0, 0, 0, 185)  # behind text on an image (alpha-blended)


@dataclass(frozen=True)
class BoxStyle:
    """How one kind of box is drawn: its legend name, colour and line style (``solid``/``dashed``/``dotted``)."""

    name: str
    colour: RGB
    line: str


# ------------------------------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Scale:
    """Sizes that follow the panel size: font pixels (normal, small), line width, padding, margin."""

    font: int
    small: int
    line: int
    pad: int
    margin: int


@lru_cache(maxsize=32)
def scale_for(side: int) -> Scale:
    """The :class:`Scale` of a panel whose longest side is ``side`` px (legible at 512 and at 1024 px)."""
    font = max(12, round(side / 42))
    return Scale(
        font=font,
        small=max(11, round(font * 0.85)),
        line=max(2, round(side / 192)),
        pad=max(2, font // 4),
        margin=max(4, font // 2),
    )


def display_size(width: int, height: int, size: int) -> Size:
    """``(width, height)`` of a ``width`` x ``height`` image shown with its longest side ``size`` (aspect kept)."""
    if size < 16:
        raise ValueError(f"display size {size} is too small; use at least 16 px")
    factor = size / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


# -------------------------------------------------------------------------------------------------- fonts
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
def font(px: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (matplotlib's) at ``px`` pixels; Pillow's default font if matplotlib's files are missing."""
    folder = _font_dir()
    if folder is not None:
        return ImageFont.truetype(str(folder / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), px)
    return ImageFont.load_default(px)


@lru_cache(maxsize=64)
def line_height(px: int) -> int:
    """Ascender to descender of the font at ``px`` (one text line)."""
    ascent, descent = font(px).getmetrics()
    return ascent + descent


@lru_cache(maxsize=4096)
def _advance(word: str, px: int, bold: bool) -> float:
    """How far ``word`` moves the pen, in (fractional) pixels."""
    return float(font(px, bold).getlength(word))


#: Words drawn character by character: numbers (probabilities, IoUs, thresholds) are new in almost every case,
#: their characters are not. Digits have one width in DejaVu Sans and are not kerned.
_NUMBER = re.compile(r"[-+<>()\[\]=.,:;/%0-9\u2265\u2264]+")


def _words(text: str, px: int, bold: bool) -> tuple[list[tuple[str, float]], float]:
    """The pieces of ``text`` (its words, split at spaces; a number's characters one by one) with each one's pen
    position, and the pen's end position."""
    space = _advance(" ", px, bold)
    placed: list[tuple[str, float]] = []
    x = 0.0
    for i, word in enumerate(text.split(" ")):
        if i:
            x += space
        if not word:
            continue  # two spaces in a row
        for piece in word if _NUMBER.fullmatch(word) else (word,):
            placed.append((piece, x))
            x += _advance(piece, px, bold)
    return placed, x


@lru_cache(maxsize=4096)
def text_width(text: str, px: int, bold: bool = False) -> int:
    """Width of ``text`` as :func:`text` draws it (word by word), in whole pixels."""
    return int(math.ceil(_words(text, px, bold)[1]))


@lru_cache(maxsize=2048)
def _word_mask(word: str, px: int, bold: bool) -> tuple[Image.Image, int, int]:
    """``word`` rendered once by Pillow as an 8-bit mask, and the mask's offset from the left/ascender anchor."""
    f = font(px, bold)
    left, top, right, bottom = (int(v) for v in f.getbbox(word, anchor="la"))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), word, font=f, fill=255, anchor="la")
    mask.load()
    return mask, left, top


@lru_cache(maxsize=1024)
def _glyphs(text: str, px: int, bold: bool) -> tuple[Image.Image, int, int]:
    """``text`` as an 8-bit mask, and the mask's offset from the left/ascender anchor: its words' cached masks
    placed at their pen positions (rendering a new string costs a few pastes, not a shaping and rendering pass:
    most words - class names, probabilities, captions - recur from case to case)."""
    placed, _ = _words(text, px, bold)
    if not placed:
        return Image.new("L", (1, 1), 0), 0, 0
    pieces = [(*_word_mask(word, px, bold), round(x)) for word, x in placed]
    if len(pieces) == 1 and pieces[0][3] == 0:
        return pieces[0][0], pieces[0][1], pieces[0][2]
    left = min(x + dx for _, dx, _, x in pieces)
    top = min(dy for _, _, dy, _ in pieces)
    right = max(x + dx + m.width for m, dx, _, x in pieces)
    bottom = max(dy + m.height for m, _, dy, _ in pieces)
    mask = Image.new("L", (right - left, bottom - top), 0)
    for m, dx, dy, x in pieces:
        mask.paste(255, (x + dx - left, dy - top, x + dx - left + m.width, dy - top + m.height), m)
    mask.load()
    return mask, left, top


def text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    string: str,
    px: int,
    colour: RGB,
    *,
    bold: bool = False,
    anchor: str = "la",
    cache: bool = True,
) -> None:
    """Draw ``string``; ``anchor`` is PIL's: ``l``/``m``/``r`` then ``a`` (ascender) or ``m`` (middle).

    The rendered mask is cached, built from cached words (``cache=False`` for long one-off strings such as a title:
    Pillow draws them whole).
    """
    if not string:
        return
    if not cache:
        draw.text(xy, string, font=font(px, bold), fill=colour, anchor=anchor)
        return
    mask, left, top = _glyphs(string, px, bold)
    x, y = xy
    if anchor[0] == "r":
        x -= text_width(string, px, bold)
    elif anchor[0] == "m":
        x -= text_width(string, px, bold) / 2
    if anchor[1] == "m":
        y -= line_height(px) / 2
    draw.bitmap((round(x) + left, round(y) + top), mask, fill=colour)


def wrap(string: str, px: int, width: int, bold: bool = False) -> list[str]:
    """``string`` broken at spaces into lines at most ``width`` px wide (a single over-long word stays whole)."""
    lines: list[str] = []
    for word in string.split():
        if lines and text_width(f"{lines[-1]} {word}", px, bold) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


# ------------------------------------------------------------------------------------------ boxes, strokes
def pattern(line: str, width: int) -> tuple[int, int] | None:
    """``(on, off)`` pixel lengths of a line style at a line width; ``None`` for solid."""
    if line == "dashed":
        return (5 * width, 3 * width)
    if line == "dotted":
        return (width, width + 1)
    return None


@lru_cache(maxsize=64)
def _dash_mask(line: str, width: int, thickness: int, span: int, horizontal: bool) -> Image.Image:
    """An 8-bit mask of a dashed/dotted stroke drawn ``width`` thick: ``span`` long, ``thickness`` across.

    The pattern starts on, so corners are drawn.
    """
    on_off = pattern(line, width)
    assert on_off is not None, "solid lines need no mask"
    runs = (np.arange(span) % sum(on_off)) < on_off[0]
    band = np.repeat((runs.astype(np.uint8) * 255)[None, :], thickness, axis=0)
    return Image.fromarray(band if horizontal else np.ascontiguousarray(band.T), "L")


def stroke(img: Image.Image, rect: Rect, colour: RGB, line: str, width: int, horizontal: bool) -> None:
    """Paint ``rect`` (clipped to the image) in ``colour``, dashed along x or y as ``line`` says at ``width``.

    The pattern starts at the rectangle's own first pixel, so corners are always drawn.
    """
    x1, y1, x2, y2 = rect
    w, h = img.size
    xa, ya, xb, yb = max(x1, 0), max(y1, 0), min(x2, w - 1), min(y2, h - 1)
    if xa > xb or ya > yb:
        return
    if pattern(line, width) is None:
        img.paste(colour, (xa, ya, xb + 1, yb + 1))
        return
    length = (x2 - x1 + 1) if horizontal else (y2 - y1 + 1)
    span = 1 << max(10, (length - 1).bit_length())  # few cached masks: power-of-two lengths
    thickness = (y2 - y1 + 1) if horizontal else (x2 - x1 + 1)
    mask = _dash_mask(line, width, thickness, span, horizontal)
    img.paste(colour, (xa, ya, xb + 1, yb + 1), mask.crop((xa - x1, ya - y1, xb - x1 + 1, yb - y1 + 1)))


def paint_box(img: Image.Image, rect: Rect, style: BoxStyle, width: int) -> None:
    """Draw ``rect``'s outline inside it, ``width`` thick, in ``style``, edged by a 1 px dark halo.

    The halo runs along both sides of each dash but not into the gaps, so the gaps show the image and dashes and
    dots keep their colour.
    """
    x1, y1, x2, y2 = rect
    w = max(1, min(width, (x2 - x1 + 2) // 2, (y2 - y1 + 2) // 2))
    for colour, g in ((HALO, 1), (style.colour, 0)):
        stroke(img, (x1, y1 - g, x2, y1 + w - 1 + g), colour, style.line, w, True)  # top
        stroke(img, (x1, y2 - w + 1 - g, x2, y2 + g), colour, style.line, w, True)  # bottom
        stroke(img, (x1 - g, y1, x1 + w - 1 + g, y2), colour, style.line, w, False)  # left
        stroke(img, (x2 - w + 1 - g, y1, x2 + g, y2), colour, style.line, w, False)  # right


def canvas(img: Image.Image) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """An image and a drawer that alpha-blends (for the translucent text backdrops)."""
    return img, ImageDraw.Draw(img, "RGBA")


# ------------------------------------------------------------------------------------------------ placement
def overlap(a: Rect, b: Rect) -> int:
    """Area shared by two inclusive rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    return w * h if w > 0 and h > 0 else 0


def fit(x: int, y: int, w: int, h: int, size: Size) -> Rect:
    """A ``w`` x ``h`` rectangle at ``(x, y)`` moved inside the canvas (top-left wins when it cannot fit)."""
    x = max(0, min(x, size[0] - w))
    y = max(0, min(y, size[1] - h))
    return (x, y, x + w - 1, y + h - 1)


def place_label(anchor: Rect, w: int, h: int, size: Size, taken: Sequence[Rect], line: int) -> Rect:
    """Where a ``w`` x ``h`` label of box ``anchor`` goes: above it, else below it, else inside its top / bottom.

    Spots that would leave the canvas vertically are skipped (the label flips to the other side at an edge);
    among the rest, the first that covers no rectangle of ``taken``. Horizontally the label is slid inside.
    """
    x1, y1, x2, y2 = anchor
    inset = line + 1
    spots = [(x1, y1 - h - 1), (x1, y2 + 2), (x1 + inset, y1 + inset), (x1 + inset, y2 - inset - h + 1)]
    fitting = [fit(x, y, w, h, size) for x, y in spots if y >= 0 and y + h <= size[1]]
    fitting = fitting or [fit(spots[2][0], spots[2][1], w, h, size)]
    for spot in fitting:
        if not any(overlap(spot, t) for t in taken):
            return spot
    return fitting[0]


def place_block(
    w: int, h: int, size: Size, avoid: Iterable[Rect], margin: int, keep_clear: Rect | None = None
) -> Rect:
    """The corner for a ``w`` x ``h`` block (legend, caption) that hides the least of ``avoid``; top corners first.

    A corner spot that would cover ``keep_clear`` (e.g. where a viewer draws its own buttons) is moved just below
    it; a spot that still covers it loses to every spot that does not.
    """
    cw, ch = size
    corners = [(margin, margin), (cw - w - margin, margin), (margin, ch - h - margin), (cw - w - margin, ch - h - margin)]
    spots = []
    for x, y in corners:
        spot = fit(x, y, w, h, size)
        if keep_clear is not None and overlap(spot, keep_clear):
            spot = fit(spot[0], keep_clear[3] + 1 + margin // 2, w, h, size)
        spots.append(spot)
    avoid = list(avoid)
    clash = (lambda s: overlap(s, keep_clear) > 0) if keep_clear is not None else (lambda s: False)
    return min(spots, key=lambda s: (clash(s), sum(overlap(s, a) for a in avoid)))


# --------------------------------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Row:
    """One legend/caption line: text in a colour, with an optional line-style key, bold or not; ``indent`` starts
    a key-less row under the text of the keyed rows (a continuation of the row above)."""

    text: str
    colour: RGB = TEXT
    key: BoxStyle | None = None
    bold: bool = False
    indent: bool = False


def block_size(rows: Sequence[Row], px: int, scale: Scale) -> tuple[int, int, int]:
    """``(width, height, key_length)`` of a block of rows on its backdrop."""
    key_len = round(2.6 * px) if any(r.key for r in rows) else 0
    widths = [text_width(r.text, px, r.bold) + (key_len + scale.pad if r.key or (r.indent and key_len) else 0) for r in rows]
    return max(widths, default=0) + 2 * scale.pad, len(rows) * line_height(px) + 2 * scale.pad, key_len


def swatch(draw: ImageDraw.ImageDraw, x: int, y_mid: int, length: int, style: BoxStyle) -> None:
    """A short horizontal line in a box style, 2 px thick (the legend's key)."""
    on, off = pattern(style.line, 2) or (length, 0)
    for a in range(x, x + length, on + off):
        draw.rectangle((a, y_mid - 1, min(a + on, x + length) - 1, y_mid), fill=style.colour)


def draw_block(draw: ImageDraw.ImageDraw, spot: Rect, rows: Sequence[Row], px: int, scale: Scale, key_len: int) -> None:
    """Rows of text (with their keys) from the top of ``spot``, on a dark backdrop filling ``spot``."""
    draw.rectangle(spot, fill=BACKDROP)
    lh = line_height(px)
    x, y = spot[0] + scale.pad, spot[1] + scale.pad
    for row in rows:
        tx = x
        if row.key is not None:
            swatch(draw, x, y + lh // 2, key_len, row.key)
        if row.key is not None or (row.indent and key_len):
            tx = x + key_len + scale.pad
        text(draw, (tx, y), row.text, px, row.colour, bold=row.bold)
        y += lh


def draw_label(
    draw: ImageDraw.ImageDraw, anchor: Rect, string: str, colour: RGB, size: Size, scale: Scale, taken: list[Rect]
) -> None:
    """A box's label beside it, inside the canvas, clear of the rectangles in ``taken`` if possible (and added to
    it)."""
    rows = [Row(string, colour, bold=True)]
    px = scale.small
    w, h, _ = block_size(rows, px, scale)
    spot = place_label(anchor, w, h, size, taken, scale.line)
    draw_block(draw, spot, rows, px, scale, 0)
    taken.append(spot)


def caption(
    draw: ImageDraw.ImageDraw,
    rows: Sequence[Row],
    size: Size,
    scale: Scale,
    avoid: Iterable[Rect],
    keep_clear: Rect | None = None,
) -> Rect:
    """A caption/legend block in the corner that hides the least of ``avoid`` (see :func:`place_block`); returns
    where it went."""
    px = scale.small
    w, h, key_len = block_size(rows, px, scale)
    spot = place_block(w, h, size, avoid, scale.margin, keep_clear)
    draw_block(draw, spot, rows, px, scale, key_len)
    return spot


def with_text_strip(img: Image.Image, lines: Sequence[str], colour: RGB = MUTED, side: int | None = None) -> Image.Image:
    """``img`` with ``lines`` written on a strip below it, wrapped to its width, at the text size of a panel whose
    longest side is ``side`` (default: ``img``'s); ``img`` itself if there are no lines."""
    lines = [ln for ln in lines if ln]
    if not lines:
        return img
    scale = scale_for(side or max(img.size))
    px, pad = scale.small, scale.pad
    wrapped = [part for ln in lines for part in wrap(ln, px, max(1, img.width - 2 * scale.margin))]
    lh = line_height(px)
    out = Image.new("RGB", (img.width, img.height + len(wrapped) * lh + 2 * pad), BACKGROUND)
    out.paste(img.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, ln in enumerate(wrapped):
        text(draw, (scale.margin, img.height + pad + i * lh), ln, px, colour, cache=False)
    return out


# -------------------------------------------------------------------------------------------- colour maps
@lru_cache(maxsize=8)
def colormap_lut(name: str) -> np.ndarray:
    """matplotlib colour map ``name`` as a ``(256, 1, 3)`` uint8 RGB table (matplotlib imported on first use)."""
    from matplotlib import colormaps

    rgba = colormaps[name](np.linspace(0.0, 1.0, 256))
    return np.ascontiguousarray((rgba[:, :3] * 255.0).round().astype(np.uint8).reshape(256, 1, 3))


@lru_cache(maxsize=8)
def blend_tables(name: str, alpha: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per map level, with an opacity growing linearly from ``alpha[0]`` to ``alpha[1]``: ``colour * opacity`` as a
    ``(256, 1, 3)`` table and ``255 * (1 - opacity)`` as a ``(256,)`` one (uint8 OpenCV LUTs)."""
    opacity = alpha[0] + (alpha[1] - alpha[0]) * np.arange(256) / 255.0
    colour = np.round(colormap_lut(name)[:, 0, :] * opacity[:, None]).astype(np.uint8).reshape(256, 1, 3)
    keep = np.round(255.0 * (1.0 - opacity)).astype(np.uint8)
    return np.ascontiguousarray(colour), keep


@lru_cache(maxsize=16)
def colourbar(name: str, width: int, height: int) -> Image.Image:
    """A ``width`` x ``height`` strip of colour map ``name``, low (left) to high (right)."""
    row = colormap_lut(name)[(np.arange(width) * 256) // max(width, 1), 0, :]
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(row, (height, width, 3))), "RGB")
