"""Cached text (:func:`cxrdemo.render.draw.text`): strings are built from cached words, numbers from cached
characters, so a new case's new strings (probabilities, IoUs) cost no font shaping; the layout is Pillow's.

- Widths: :func:`~cxrdemo.render.draw.text_width` adds the pieces' advances (Pillow's ``getlength``, fractional);
  Pillow's whole-string layout adds the same advances plus kerning, and DejaVu Sans kerns neither digits nor pairs
  across a space, so the two widths are equal in whole pixels (checked on every probability string and on the
  captions the panels write, at the sizes the panels use).
- Pixels: a word without digits is Pillow's own rendering of that word, byte for byte; a composed string contains
  each piece's pixels at the piece's pen position, rounded to a whole pixel (Pillow renders at the fractional
  position, so the glyph edges may differ by one pixel's anti-aliasing there, which is why numbers are checked for
  their extent and not against Pillow's bytes).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cxrdemo.render import draw

SIZES = [10, 11, 13, 16, 21]  # the panels' small and normal fonts from 256 to 1024 px panels
PROBABILITIES = [f"{v / 100:.2f}" for v in range(101)] + ["<0.01"]
CAPTIONS = [
    "model box: Effusion 0.43",
    "Grad-CAM \u00b7 Pleural Thickening (p 0.49)",
    "CAM box: map \u2265 127/255",
    "no box class reaches its threshold: top-1 shown",
    "Effusion: IoU model 0.12 \u00b7 CAM 0.34",
    "  two  spaces ",
]


def _pillow(string: str, px: int, bold: bool) -> tuple[np.ndarray, int, int]:
    f = draw.font(px, bold)
    left, top, right, bottom = (int(v) for v in f.getbbox(string, anchor="la"))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), string, font=f, fill=255, anchor="la")
    return np.asarray(mask), left, top


@pytest.mark.parametrize("px", SIZES)
@pytest.mark.parametrize("bold", [False, True])
def test_widths_are_pillows(px: int, bold: bool) -> None:
    for string in PROBABILITIES + CAPTIONS:
        assert draw.text_width(string, px, bold) == math.ceil(draw.font(px, bold).getlength(string)), string


@pytest.mark.parametrize("word", ["Effusion", "Pleural", "Grad-CAM", "threshold:", "\u00b7"])
def test_a_word_is_pillows_rendering(word: str) -> None:
    mask, left, top = draw._glyphs(word, 13, False)
    expected, e_left, e_top = _pillow(word, 13, False)
    assert (left, top) == (e_left, e_top)
    assert np.array_equal(np.asarray(mask), expected)


@pytest.mark.parametrize("px", SIZES)
def test_a_composed_string_spans_pillows_box(px: int) -> None:
    """Same ink extent as Pillow's rendering, within the one pixel that rounding a piece's position can move it."""
    for string in PROBABILITIES[::7] + CAPTIONS[:5]:
        mask, left, top = draw._glyphs(string, px, False)
        expected, e_left, e_top = _pillow(string, px, False)
        assert abs(left - e_left) <= 1 and abs(top - e_top) <= 1, string
        assert abs(mask.width - expected.shape[1]) <= 1 and abs(mask.height - expected.shape[0]) <= 1, string
        ink, e_ink = float(np.asarray(mask, dtype=np.float64).sum()), float(expected.astype(np.float64).sum())
        # The same outlines rasterised at another sub-pixel phase: FreeType's coverage conserves each outline's area
        # up to 8-bit rounding on the edge pixels (< 0.5/255 each), far below 2 % (measured: 0.07 % at most).
        assert abs(ink - e_ink) <= 0.02 * e_ink, string


def test_the_pieces_sit_at_their_pen_positions() -> None:
    string = "IoU 0.37"
    mask, left, top = draw._glyphs(string, 16, False)
    placed, end = draw._words(string, 16, False)
    assert [p for p, _ in placed] == ["IoU", "0", ".", "3", "7"]
    for piece, x in placed:
        piece_mask, p_left, p_top = draw._word_mask(piece, 16, False)
        x0, y0 = round(x) + p_left - left, p_top - top
        region = np.asarray(mask)[y0 : y0 + piece_mask.height, x0 : x0 + piece_mask.width]
        assert np.array_equal(region, np.asarray(piece_mask)), piece  # pieces do not overlap here
    assert draw.text_width(string, 16) == math.ceil(end)


def test_a_new_number_renders_no_new_glyphs() -> None:
    """Once the digits are cached, a probability never seen before costs no Pillow rendering."""
    for d in "0123456789.":
        draw._word_mask(d, 14, True)
    before = draw._word_mask.cache_info().misses
    img = Image.new("RGB", (200, 40))
    for value in ("0.37", "0.91", "1.00", "0.58"):
        draw.text(ImageDraw.Draw(img), (4, 4), f"Nodule {value}", 14, (255, 255, 255), bold=True)
    assert draw._word_mask.cache_info().misses - before <= 1  # at most the word "Nodule"


def test_text_draws_the_cached_mask_where_anchored() -> None:
    img = Image.new("RGB", (300, 60))
    draw.text(ImageDraw.Draw(img), (290, 30), "0.42", 16, (255, 255, 255), bold=True, anchor="rm")
    ink = np.argwhere(np.asarray(img)[..., 0] > 0)
    assert ink[:, 1].max() <= 290 and ink[:, 1].max() >= 290 - 3  # right-anchored at x = 290
    assert abs((ink[:, 0].min() + ink[:, 0].max()) / 2 - 30) <= 3  # middle-anchored at y = 30
