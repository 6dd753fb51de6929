"""What the panels share: the box styles, the caller's :class:`Hints`, and the film resized once for display
(:class:`View`), which maps the analysis' boxes onto the panel and keeps text clear of the viewer's buttons.

Colours are Okabe-Ito, each paired with its own line style so the panels read in grayscale and for colour-blind
users: ground truth bluish green, solid; model box orange, dashed; CAM box sky blue, dotted (all with a thin dark
halo, visible on bright and dark film).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ..boxes import Box
from ..imaging import Radiograph
from ..results import Analysis, ClassProbability
from .draw import RGB, BoxStyle, Rect, Row, Scale, caption, display_size, draw_label, scale_for

#: Display longest side when the caller gives none.
DEFAULT_SIZE = 768
TRUTH = BoxStyle("ground truth", (0x00, 0x9E, 0x73), "solid")  # Okabe-Ito bluish green
MODEL = BoxStyle("model box", (0xE6, 0x9F, 0x00), "dashed")  # Okabe-Ito orange
CAM = BoxStyle("CAM box", (0x56, 0xB4, 0xE9), "dotted")  # Okabe-Ito sky blue
#: Width x height of the top-right corner where the web page draws its fullscreen/download buttons over a panel
#: 512 px wide; captions and labels stay clear of it (scaled with the panel's longest side).
BUTTON_ZONE = (56, 28)


@dataclass(frozen=True)
class Hints:
    """What the caller's interface tells a user to do when something is missing, appended to the panel's message
    (empty: the message alone). The web app: ``Hints(no_truth="draw or type a box", no_cam="pick a CAM method to
    see where the model looked")``."""

    no_truth: str = ""
    no_cam: str = ""


NO_HINTS = Hints()


@dataclass(frozen=True)
class View:
    """The film resized once for display, as an RGB PIL image and a grayscale array (neither is ever written to:
    panels copy them), and how the analysis' pixels map onto it."""

    film: Image.Image
    gray: np.ndarray
    sx: float
    sy: float
    scale: Scale

    @property
    def size(self) -> tuple[int, int]:
        return self.film.size

    @property
    def keep_clear(self) -> Rect:
        """The top-right :data:`BUTTON_ZONE`, scaled to this panel."""
        w, h = self.size
        k = max(w, h) / 512
        return (w - round(BUTTON_ZONE[0] * k), 0, w - 1, round(BUTTON_ZONE[1] * k) - 1)

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

    def caption(self, draw: ImageDraw.ImageDraw, rows: Sequence[Row], avoid: Sequence[Rect]) -> Rect:
        """A caption in the corner that hides the least of ``avoid``, clear of :attr:`keep_clear`."""
        return caption(draw, rows, self.size, self.scale, avoid, self.keep_clear)

    def label(self, draw: ImageDraw.ImageDraw, rect: Rect, string: str, colour: RGB, taken: list[Rect]) -> None:
        """A box's label beside ``rect``, clear of ``taken`` (and added to it)."""
        draw_label(draw, rect, string, colour, self.size, self.scale, taken)


def film_view(radiograph: Radiograph, analysis: Analysis, size: int | None) -> View:
    """``radiograph`` with its longest side ``size`` (default :data:`DEFAULT_SIZE`), resized once."""
    return view_of(radiograph, size, analysis.width, analysis.height, analysis.model_region)


def view_of(radiograph: Radiograph, size: int | None, width: int, height: int, model_region: Box | None) -> View:
    """:func:`film_view` from what it reads of an analysis, so it can start before the network runs: the size of
    the film in the analysis' pixels (``width`` x ``height``, normally the radiograph's) and the region a cropping
    model saw (``None``: the whole film)."""
    pixels = np.ascontiguousarray(radiograph.pixels, dtype=np.uint8)
    if pixels.ndim != 2:
        raise ValueError(f"radiograph pixels must be (H, W) uint8, got shape {pixels.shape}")
    h, w = pixels.shape
    dw, dh = display_size(w, h, size or DEFAULT_SIZE)
    if (dw, dh) != (w, h):
        # Area averaging where bilinear would alias (shrinking 2x or more); bilinear, 4x cheaper, otherwise.
        interpolation = cv2.INTER_AREA if 2 * dw <= w else cv2.INTER_LINEAR
        pixels = cv2.resize(pixels, (dw, dh), interpolation=interpolation)
    # Boxes are in the analysis' original pixels (those of this film, normally).
    sx, sy = dw / max(width, 1), dh / max(height, 1)
    if model_region is not None:
        pixels = dim_outside(pixels, model_region, sx, sy)
    film = Image.fromarray(pixels, "L").convert("RGB")  # much cheaper than building RGB in numpy first
    return View(film, pixels, sx, sy, scale_for(max(dw, dh)))


#: Brightness left to the film outside the region a cropping model saw.
OUTSIDE_CROP = 0.35


def dim_outside(pixels: np.ndarray, region: Box, sx: float, sy: float) -> np.ndarray:
    """A copy of the display film ``pixels`` darkened to :data:`OUTSIDE_CROP` outside ``region`` (original pixels,
    scaled by ``sx``, ``sy``): every film panel then shows which part the model never received."""
    h, w = pixels.shape
    x1, x2 = (min(max(round(v * sx), 0), w) for v in (region.x1, region.x2))
    y1, y2 = (min(max(round(v * sy), 0), h) for v in (region.y1, region.y2))
    out = cv2.convertScaleAbs(pixels, alpha=OUTSIDE_CROP)
    out[y1:y2, x1:x2] = pixels[y1:y2, x1:x2]
    return out


def pretty(label: str) -> str:
    """A class label as people read it (``Pleural_Thickening`` -> ``Pleural Thickening``)."""
    return label.replace("_", " ")


def numbered_labels(labels: Sequence[str]) -> list[str]:
    """Class names as people read them, ``#k`` added where a class has several boxes (``Atelectasis #1``,
    ``Atelectasis #2``): the one naming of ground-truth boxes in the panels, the method grid and the A/B table."""
    from collections import Counter

    totals = Counter(labels)  # linear in the rows (a count per row would be quadratic)
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(pretty(label) + (f" #{seen[label]}" if totals[label] > 1 else ""))
    return out


def probability_of(analysis: Analysis, label: str) -> ClassProbability | None:
    return next((p for p in analysis.probabilities if p.label == label), None)


def box_text(box: Box) -> str:
    """A model box's label: class and probability."""
    return pretty(box.label) + (f" {box.score:.2f}" if box.score is not None else "")
