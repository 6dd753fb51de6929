"""Localisation of one heatmap against one ground-truth box (numpy only; no torch).

Inputs: a heatmap, a float array in [0, 1] with the ORIGINAL image's shape ``(H, W)`` (:func:`resize_map` takes a
model-frame CAM there), and a :class:`cxrdemo.boxes.Box` in the same pixels.

Pixel convention (used by every function here): pixel ``(r, c)`` (row ``r``, column ``c``) covers the square
``[c, c + 1) x [r, r + 1)``; it belongs to a box when its CENTRE lies in the closed box::

    x1 <= c + 0.5 <= x2   and   y1 <= r + 0.5 <= y2

So the box ``(0, 0, 10, 10)`` holds exactly the 10 x 10 pixels ``0..9``, and a pixel whose centre lies on the edge
counts as inside. Non-finite map values are read as 0.

Metrics:
- pointing game / hit rate (Zhang et al. 2016; cheXlocalize's hit rate): is the map's maximum inside the box
  (grown by a tolerance, Zhang et al. use 15 px)? Ties: the FIRST maximum in row-major order is the one that
  counts (``numpy.argmax`` on the flattened map), so the answer never depends on how many maxima there are.
- energy-based pointing game (Wang et al. 2020, Score-CAM section 4.2): the share of the map's mass inside the box
  (negative values, which a [0, 1] map does not have, would be read as 0).
- mask IoU (cheXlocalize): IoU between the pixel mask ``heatmap >= threshold`` and the box's pixel mask, with the
  threshold from Otsu's method (cheXlocalize's default; on the 8-bit map, see :func:`otsu_threshold`), or fixed
  at 127/255 and 180/255 (the demo's CAM box thresholds, compared as ``heatmap * 255 >= t`` exactly as
  :func:`cxrdemo.explain.cam_box` does). A pixel of value 0 carries no attribution and never belongs to a mask,
  so an all-zero map (e.g. Grad-CAM whose ReLU removed everything) has an empty mask, whatever the threshold.
"""

from __future__ import annotations

import numpy as np

from ..boxes import Box

#: The keys of :func:`map_metrics`, in report order.
MAP_METRICS: tuple[str, ...] = ("pointing_game", "energy_in_box", "mask_iou_otsu", "mask_iou_127", "mask_iou_180")
#: How every per-box metric of the audit is named for people: the one table of display names (report.md's tables,
#: the plots, the gallery's columns and the app's sort menu all read it).
METRIC_NAMES: dict[str, str] = {
    "probability": "Probability",
    "model_iou": "Model-box IoU",
    "cam_iou": "CAM-box IoU",
    "pointing_game": "Pointing game",
    "energy_in_box": "Energy in box",
    "mask_iou_otsu": "Mask IoU (Otsu)",
    "mask_iou_127": "Mask IoU (127)",
    "mask_iou_180": "Mask IoU (180)",
}

#: The fixed CAM thresholds (of 255) of ``mask_iou_127`` and ``mask_iou_180``.
FIXED_THRESHOLDS: tuple[int, ...] = (127, 180)


def _as_map(heatmap: np.ndarray) -> np.ndarray:
    h = np.asarray(heatmap, dtype=np.float64)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"a heatmap must be a non-empty 2-D (H, W) array, not shape {h.shape}")
    if not np.isfinite(h).all():
        h = np.nan_to_num(h, nan=0.0, posinf=0.0, neginf=0.0)
    return h


def _inside(n: int, lo: float, hi: float) -> np.ndarray:
    """Which of the pixel centres ``0.5, 1.5, ..., n - 0.5`` lie in ``[lo, hi]``."""
    centres = np.arange(n, dtype=np.float64) + 0.5
    return (centres >= lo) & (centres <= hi)


def box_mask(shape: tuple[int, int], box: Box, grow: float = 0.0) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the pixels of ``box`` (grown by ``grow`` px on every side), by the centre rule."""
    height, width = int(shape[0]), int(shape[1])
    rows = _inside(height, box.y1 - grow, box.y2 + grow)
    cols = _inside(width, box.x1 - grow, box.x2 + grow)
    return rows[:, None] & cols[None, :]


def resize_map(heatmap: np.ndarray, width: int, height: int) -> np.ndarray:
    """A model-frame map resized (bilinear) to an image of ``width`` x ``height``: float32 in [0, 1], NaN -> 0."""
    import cv2

    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if h.shape != (int(height), int(width)):
        h = cv2.resize(h, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    return np.clip(h, 0.0, 1.0)


def pointing_hit(heatmap: np.ndarray, box: Box, tolerance_px: float = 0.0) -> bool:
    """Whether the map's maximum (the first one in row-major order) lies in ``box`` grown by ``tolerance_px``.

    A pixel is inside when its centre ``(c + 0.5, r + 0.5)`` satisfies ``x1 - t <= c + 0.5 <= x2 + t`` and the
    same for y (see the module doc). An all-zero map points at pixel ``(0, 0)``, like any constant map.
    """
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, not {tolerance_px}")
    h = _as_map(heatmap)
    r, c = np.unravel_index(int(np.argmax(h)), h.shape)
    x, y = c + 0.5, r + 0.5
    t = float(tolerance_px)
    return bool(box.x1 - t <= x <= box.x2 + t and box.y1 - t <= y <= box.y2 + t)


def energy_in_box(heatmap: np.ndarray, box: Box) -> float:
    """The share of the map's mass inside ``box``: ``sum(inside) / sum(all)``; 0 for an all-zero map."""
    h = np.clip(_as_map(heatmap), 0.0, None)
    total = float(h.sum())
    if total <= 0.0:
        return 0.0
    inside = float(h[box_mask(h.shape, box)].sum())
    return float(min(max(inside / total, 0.0), 1.0))


def _otsu_level(h: np.ndarray) -> int | None:
    """Otsu's level ``t`` of the 8-bit map ``floor(h * 255)`` (upper class: levels ``> t``); ``None`` if constant."""
    from skimage.filters import threshold_otsu

    q = np.floor(np.clip(h, 0.0, 1.0) * 255.0).astype(np.uint8)
    if q.min() == q.max():
        return None
    return int(threshold_otsu(q))


def otsu_threshold(heatmap: np.ndarray) -> float:
    """Otsu's threshold of the map, on the map's [0, 1] scale; a constant map -> its value.

    ``skimage.filters.threshold_otsu`` runs on the map quantised to 8 bits as the demo's CAM box does
    (``floor(heatmap * 255)``; cheXlocalize also thresholds 8-bit maps), which gives the level ``t`` whose upper
    class is ``floor(heatmap * 255) > t``. The threshold returned is ``(t + 1) / 255``, so ``heatmap >= threshold``
    is exactly that upper class (on float maps skimage returns a bin centre, which splits the bin that holds it).
    A map that is constant at 8 bits has no split: its minimum is returned (every pixel reaches it).
    """
    h = _as_map(heatmap)
    level = _otsu_level(h)
    return float(h.min()) if level is None else (level + 1) / 255.0


def _mask_iou(mask: np.ndarray, box: Box) -> float:
    inside = box_mask(mask.shape, box)
    inter = int(np.count_nonzero(mask & inside))
    union = int(np.count_nonzero(mask)) + int(np.count_nonzero(inside)) - inter
    return inter / union if union > 0 else 0.0


def mask_iou(heatmap: np.ndarray, box: Box, threshold: float) -> float:
    """IoU of the mask ``heatmap >= threshold`` (pixels of value 0 excluded) with the box's pixel mask.

    ``threshold`` is on the map's [0, 1] scale. 0 when both masks are empty.
    """
    h = _as_map(heatmap)
    return _mask_iou((h >= threshold) & (h > 0.0), box)


def map_metrics(heatmap: np.ndarray, box: Box, tolerance_px: float = 0.0) -> dict[str, float]:
    """Every localisation metric of one map against one box, keyed by :data:`MAP_METRICS`.

    ``pointing_game`` is 1.0 (hit) or 0.0 (miss); the others are in [0, 1]. ``mask_iou_127`` / ``mask_iou_180``
    threshold ``heatmap * 255 >= 127`` / ``>= 180``.
    """
    h = _as_map(heatmap)
    positive = h > 0.0
    scaled = h * 255.0
    out = {
        "pointing_game": float(pointing_hit(h, box, tolerance_px)),
        "energy_in_box": energy_in_box(h, box),
    }
    level = _otsu_level(h)
    otsu_mask = h >= h.min() if level is None else scaled >= level + 1
    out["mask_iou_otsu"] = _mask_iou(otsu_mask & positive, box)
    for t in FIXED_THRESHOLDS:
        out[f"mask_iou_{t}"] = _mask_iou((scaled >= t) & positive, box)
    return {k: out[k] for k in MAP_METRICS}
