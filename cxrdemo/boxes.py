"""Box geometry: the :class:`Box` value, IoU, scaling, clipping and validation.

Boxes are ``xyxy`` in pixels of some image (x to the right, y down, ``x2 > x1``, ``y2 > y1``). NIH's list gives
``[x, y, w, h]``; :func:`Box.from_xywh` converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import BoxError


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``(x1, y1, x2, y2)`` with an optional label and score."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    score: float | None = None

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float, label: str = "", score: float | None = None) -> "Box":
        """Box from NIH's ``[x, y, w, h]``."""
        return cls(float(x), float(y), float(x) + float(w), float(y) + float(h), label, score)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        """The corners as a tuple."""
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    def scaled(self, sx: float, sy: float) -> "Box":
        """The box with x multiplied by ``sx`` and y by ``sy``."""
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.label, self.score)

    def clipped(self, width: float, height: float) -> "Box":
        """The box clipped to an image of ``width`` x ``height``."""
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
            self.label,
            self.score,
        )

    def rounded(self, ndigits: int = 1) -> list[float]:
        """Corners rounded for JSON."""
        return [round(v, ndigits) for v in self.xyxy]


def iou(a: Box | Sequence[float], b: Box | Sequence[float]) -> float:
    """Intersection over union of two ``xyxy`` boxes, always in [0, 1] (0 when either box is empty)."""
    ax1, ay1, ax2, ay2 = a.xyxy if isinstance(a, Box) else a
    bx1, by1, bx2, by2 = b.xyxy if isinstance(b, Box) else b
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = max(ax2 - ax1, 0.0) * max(ay2 - ay1, 0.0) + max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0) - inter
    if union <= 0:
        return 0.0
    return float(min(max(inter / union, 0.0), 1.0))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy arrays, shape ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return np.clip(out, 0.0, 1.0)


def validate_box(box: Box, width: int, height: int, *, min_size: float = 1.0) -> Box:
    """Check a user-supplied box against an image and return it clipped to the image.

    Corners given in the wrong order are refused (not silently swapped), as are boxes with no area and boxes
    entirely outside the image; a box that pokes out of the image is clipped.
    """
    values = box.xyxy
    if not all(np.isfinite(v) for v in values):
        raise BoxError(f"box {list(values)} has a non-finite coordinate; give four numbers x1, y1, x2, y2")
    if box.x2 <= box.x1 or box.y2 <= box.y1:
        raise BoxError(
            f"box {box.rounded()} has its corners in the wrong order or no area; give x1 < x2 and y1 < y2 (pixels)"
        )
    clipped = box.clipped(width, height)
    if clipped.width < min_size or clipped.height < min_size:
        if box.width < min_size or box.height < min_size:
            raise BoxError(f"box {box.rounded()} is smaller than {min_size:g} px; give its corners in pixels of the {width}x{height} image")
        raise BoxError(f"box {box.rounded()} lies outside the {width}x{height} image; give pixel coordinates inside it")
    return clipped
