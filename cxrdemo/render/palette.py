"""Lossless palette PNGs for flat-colour panels: the probability chart's pixels, written in a third of the time.

Pillow writes an RGB PNG with adaptive row filtering (it tries every PNG filter on every row), which costs about as
much as the rest of the single-image pipeline after the network (bench/RESULTS.md: 21 ms for the 768 px chart on
this project's 2-core machine, at zlib level 0 as at level 1). The chart is flat colours and anti-aliased text:
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
    24-bit colour, filled only at the image's colours), so ``exact_palette(im).convert("RGB")`` equals ``im``
    pixel for pixel.
    """
    if image.mode != "RGB":
        return image
    colours = image.getcolors(MAX_PALETTE_COLOURS)  # None as soon as there are more than 256
    if colours is None:
        return image
    rgb = np.asarray(image)
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    triples = [c for _, c in colours]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in triples], dtype=np.uint32)
    # 16 MiB of zeros from calloc: only the pages holding the image's colours are ever touched.
    index = np.zeros(1 << 24, dtype=np.uint8)
    index[keys] = np.arange(len(triples), dtype=np.uint8)
    out = Image.fromarray(index[packed], "P")
    out.putpalette([v for triple in triples for v in triple])
    return out
