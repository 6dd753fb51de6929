"""What part of the film a model saw, and maps and boxes between the film and the model's input frame.

A model that resizes the whole film (cxrdemo's own, a ViT processor's exact resize) sees all of it. A centre crop
(timm's ``crop_pct``, ConvNeXt's processor, torchxrayvision's square crop of a non-square film) hides the borders:
a CAM is only defined inside the crop, and a ground-truth box outside it cannot be scored as if the model had seen it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..boxes import Box
from ..results import CROP_NOTE

#: A box keeps being scored when at least this fraction of its area lies in the region the model saw (a box mostly
#: hidden by the crop would reward or punish a model for pixels it never received).
MIN_VISIBLE_FRACTION = 0.5


@dataclass(frozen=True)
class FilmView:
    """The region ``[x0, x1) x [y0, y1)`` of a ``width x height`` film (original pixels) that the model input shows."""

    width: int
    height: int
    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def whole(cls, width: int, height: int) -> "FilmView":
        """The whole film (a plain resize)."""
        return cls(width, height, 0.0, 0.0, float(width), float(height))

    @property
    def full(self) -> bool:
        """True when the model saw the whole film (to a hundredth of a pixel)."""
        return self.x0 <= 0.01 and self.y0 <= 0.01 and self.x1 >= self.width - 0.01 and self.y1 >= self.height - 0.01

    def note(self) -> str | None:
        """One line for the panels when part of the film was hidden, else ``None``."""
        if self.full:
            return None
        return (
            f"{CROP_NOTE} the model saw x {self.x0:.0f}-{self.x1:.0f}, y {self.y0:.0f}-{self.y1:.0f} of this "
            f"{self.width}x{self.height} film; the CAM is empty outside it and boxes are clipped to it"
        )

    def map_to_film(self, heatmap: np.ndarray, size: int) -> np.ndarray:
        """A model-frame map -> a ``(size, size)`` map over the whole film (zero where the model saw nothing)."""
        heatmap = np.asarray(heatmap, dtype=np.float32)
        if self.full:
            return heatmap if heatmap.shape == (size, size) else cv2.resize(heatmap, (size, size), interpolation=cv2.INTER_LINEAR)
        out = np.zeros((size, size), dtype=np.float32)
        c0, c1 = (int(round(v * size / self.width)) for v in (self.x0, self.x1))
        r0, r1 = (int(round(v * size / self.height)) for v in (self.y0, self.y1))
        c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
        out[r0:r1, c0:c1] = cv2.resize(heatmap, (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR)
        return out

    def model_box_to_film(self, xyxy_norm: np.ndarray | list[float], label: str = "", score: float | None = None) -> Box:
        """A box normalised to the model input -> original pixels."""
        x1, y1, x2, y2 = (float(v) for v in xyxy_norm)
        w, h = self.x1 - self.x0, self.y1 - self.y0
        box = Box(self.x0 + x1 * w, self.y0 + y1 * h, self.x0 + x2 * w, self.y0 + y2 * h, label, score)
        return box.clipped(self.width, self.height)

    def visible(self, box: Box) -> Box | None:
        """The part of ``box`` the model saw, or ``None`` when less than :data:`MIN_VISIBLE_FRACTION` of it was."""
        if self.full:
            return box
        x1, y1 = max(box.x1, self.x0), max(box.y1, self.y0)
        x2, y2 = min(box.x2, self.x1), min(box.y2, self.y1)
        if x2 <= x1 or y2 <= y1 or box.area <= 0:
            return None
        if (x2 - x1) * (y2 - y1) < MIN_VISIBLE_FRACTION * box.area:
            return None
        return Box(x1, y1, x2, y2, box.label, box.score)


def centre_crop_view(width: int, height: int, resized: tuple[int, int], crop: tuple[int, int]) -> FilmView:
    """The view of "resize to ``resized`` (w, h), then centre crop ``crop`` (w, h)" (torchvision's rounding)."""
    rw, rh = resized
    cw, ch = crop
    left = int(round((rw - cw) / 2.0))
    top = int(round((rh - ch) / 2.0))
    sx, sy = width / rw, height / rh
    x0, y0 = max(0.0, left * sx), max(0.0, top * sy)
    return FilmView(width, height, x0, y0, min(float(width), (left + cw) * sx), min(float(height), (top + ch) * sy))
