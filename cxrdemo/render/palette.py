"""Lossless palette PNGs for flat-colour panels: the probability chart's pixels, encoded faster.

Pillow writes an RGB PNG with adaptive row filtering (it tries every PNG filter on every row): 13-21 ms for the
768 px chart on this project's 2-core machine, as much at zlib level 0 as at level 1 (bench/RESULTS.md); the
palette conversion and the palette PNG take about 8 ms. The chart is flat colours and anti-aliased text:
about 240 distinct colours. :func:`exact_palette` turns such an image into a palette ("P") image that holds exactly
its colours, so the PNG decodes to the very same RGB pixels (nothing is quantised: an image with more than 256
colours is returned unchanged), and Pillow writes palette PNGs without filtering.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["MAX_PALETTE_COLOURS", "exact_palette"]

#: A PNG palette holds at most 256 entries.
MAX_PALETTE_COLOURS = 256


def exact_palette(image: Image.Image) -> Image.Image:
    """``image`` as a palette image of exactly its own colours when it is RGB with at most 256 of them, else
    ``image`` itself (unchanged, not copied).

    Lossless by construction: every pixel's index points at its own RGB triple (a lookup table indexed by the
    24-bit colour, written only at the image's colours), so ``exact_palette(im).convert("RGB")`` equals ``im``
    pixel for pixel.
    """
    if image.mode != "RGB":
        return image
    colours = image.getcolors(MAX_PALETTE_COLOURS)  # None as soon as there are more than 256
    if colours is None:
        return image
    triples = [c for _, c in colours]
    swatch = Image.new("RGB", (len(triples), 1))
    swatch.putdata(triples)
    keys = _colour_keys(swatch)[0]
    # A table over all 2^24 colours, left uninitialised (np.zeros would clear 16 MiB per call): only the entries
    # of the image's own colours are written, and every pixel's colour is one of them (getcolors counted them
    # all), so no unwritten entry is ever read.
    index = np.empty(1 << 24, dtype=np.uint8)
    index[keys] = np.arange(len(triples), dtype=np.uint8)
    out = Image.fromarray(index[_colour_keys(image)], "P")
    out.putpalette([v for triple in triples for v in triple])
    return out


def _colour_keys(image: Image.Image) -> np.ndarray:
    """Each pixel of an RGB image as one 24-bit number: its RGBA bytes read as a uint32 (one conversion, no
    per-channel arithmetic), the alpha byte masked off. The byte order is the machine's, the same for every call,
    so keys of the palette and of the pixels agree."""
    rgba = np.asarray(image.convert("RGBA"))
    words = rgba.view(np.uint32)[..., 0]
    return words & np.uint32(0x00FFFFFF) if np.little_endian else words >> np.uint32(8)
