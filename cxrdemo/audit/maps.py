"""Localisation of one heatmap against one ground-truth box or mask (numpy only; no torch).

Two paths, clearly named: the BOX path (:func:`map_metrics`, :func:`pointing_hit`, :func:`energy_in_box`,
:func:`mask_iou`) reads a :class:`~cxrdemo.boxes.Box` with the closed centre rule below; the REGION path
(:func:`mask_metrics`, :func:`pointing_hit_mask`, :func:`energy_in_mask`) reads a boolean ground-truth mask, e.g.
a :class:`cxrdemo.datasets.base.Region` as ``region.mask(h, w)`` (a box region rasterised by
``datasets.base.box_mask``). Both compute the same definitions with one shared function; :func:`chexlocalize_iou`
and :func:`chexlocalize_hit` add cheXlocalize's NaN rules for empty masks and negative images.

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


def _metrics(h: np.ndarray, truth: np.ndarray, hit: bool) -> dict[str, float]:
    """The metrics of :data:`MAP_METRICS` of the checked map ``h`` against the boolean ``truth`` mask (``hit``: the
    pointing game's answer, decided by the caller's rule for the tolerance)."""
    positive = h > 0.0
    scaled = h * 255.0
    clipped = np.clip(h, 0.0, None)
    total = float(clipped.sum())
    inside = float(clipped[truth].sum()) if total > 0.0 else 0.0
    out = {
        "pointing_game": float(hit),
        "energy_in_box": float(min(max(inside / total, 0.0), 1.0)) if total > 0.0 else 0.0,
    }
    level = _otsu_level(h)
    otsu_mask = h >= h.min() if level is None else scaled >= level + 1
    out["mask_iou_otsu"] = _masks_iou(otsu_mask & positive, truth)
    for t in FIXED_THRESHOLDS:
        out[f"mask_iou_{t}"] = _masks_iou((scaled >= t) & positive, truth)
    return {k: out[k] for k in MAP_METRICS}


def _masks_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 0 when both are empty (the audit's rule; cheXlocalize's: :func:`chexlocalize_iou`)."""
    inter = int(np.count_nonzero(a & b))
    union = int(np.count_nonzero(a)) + int(np.count_nonzero(b)) - inter
    return inter / union if union > 0 else 0.0


def map_metrics(heatmap: np.ndarray, box: Box, tolerance_px: float = 0.0) -> dict[str, float]:
    """Every localisation metric of one map against one box, keyed by :data:`MAP_METRICS` (the BOX path).

    ``pointing_game`` is 1.0 (hit) or 0.0 (miss); the others are in [0, 1]. ``mask_iou_127`` / ``mask_iou_180``
    threshold ``heatmap * 255 >= 127`` / ``>= 180``. The box is read with this module's closed centre rule
    (:func:`box_mask`); :func:`mask_metrics` gives the same figures for the box's mask from that rule, and for
    ``datasets.base.box_mask``'s half-open rule whenever no edge of the box lies exactly on a pixel centre
    (``x2`` or ``y2`` equal to ``k + 0.5``), see :func:`mask_metrics`.
    """
    h = _as_map(heatmap)
    return _metrics(h, box_mask(h.shape, box), pointing_hit(h, box, tolerance_px))


# ------------------------------------------------------------------------------------------------ region path
def pointing_hit_mask(heatmap: np.ndarray, mask: np.ndarray, tolerance_px: float = 0.0) -> bool:
    """Whether the map's maximum (the first one in row-major order, as ``numpy.argmax`` and cheXlocalize's
    ``eval.py`` take it) lies in ``mask`` dilated by ``floor(tolerance_px)`` pixels (a square neighbourhood).

    With tolerance 0 this is cheXlocalize's hit: ``gt_mask[argmax] == 1``. For a box rasterised by
    ``datasets.base.box_mask`` and an integer tolerance ``t``, dilating its mask by ``t`` is exactly rasterising the
    box grown by ``t`` on every side (the columns whose centre lies in ``[x1 - t, x2 + t)`` are the box's columns
    ``a..b`` widened to ``a - t..b + t``), so the mask and the box give the same answer.
    """
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, not {tolerance_px}")
    h = _as_map(heatmap)
    m = _as_mask(mask, h.shape)
    r, c = np.unravel_index(int(np.argmax(h)), h.shape)
    k = int(np.floor(tolerance_px))
    return bool(m[max(0, r - k) : r + k + 1, max(0, c - k) : c + k + 1].any())


def _as_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    if m.shape != tuple(shape):
        raise ValueError(f"a ground-truth mask must have the map's shape {tuple(shape)}, not {m.shape}")
    return m


def energy_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's mass inside ``mask``; 0 for an all-zero map (negative values read as 0)."""
    h = np.clip(_as_map(heatmap), 0.0, None)
    m = _as_mask(mask, h.shape)
    total = float(h.sum())
    return float(min(max(float(h[m].sum()) / total, 0.0), 1.0)) if total > 0.0 else 0.0


def mask_metrics(heatmap: np.ndarray, mask: np.ndarray, tolerance_px: float = 0.0) -> dict[str, float]:
    """Every metric of :data:`MAP_METRICS` of one map against a boolean ground-truth ``mask`` (the REGION path).

    The definitions are those of :func:`map_metrics` with the mask in place of the box's pixels: the pointing game
    is :func:`pointing_hit_mask`, the energy is the map's share inside the mask, each mask IoU compares the
    binarised map (pixels of value 0 excluded) with the mask. A box region reaches this function as its
    rasterised mask (``Region.mask``, i.e. ``datasets.base.box_mask``), so the same region given as a box or as a
    mask gives identical figures. That rasteriser is half-open (a centre on ``x2``/``y2`` is outside) where
    :func:`box_mask` here is closed: the two differ only by the column (row) whose centre lies exactly on ``x2``
    (``y2``), which never happens for NIH's 984 boxes at 1024 or 256 px (tests/test_audit_regions.py).
    """
    h = _as_map(heatmap)
    m = _as_mask(mask, h.shape)
    return _metrics(h, m, pointing_hit_mask(h, m, tolerance_px))


def chexlocalize_iou(pred: np.ndarray, truth: np.ndarray, true_pos_only: bool = True) -> float:
    """IoU of a binarised saliency map with a ground-truth segmentation, with cheXlocalize's rule for empty masks
    (``eval.py``'s ``calculate_iou``): NaN (left out of the per-pathology mean) when either mask is empty and
    ``true_pos_only`` (its default), else NaN only when both are. mIoU is the mean over images, NaNs skipped."""
    a, b = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    inter = int(np.count_nonzero(a & b))
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if (true_pos_only and (na == 0 or nb == 0)) or na + nb == 0:
        return float("nan")
    return inter / (na + nb - inter)


def chexlocalize_hit(heatmap: np.ndarray, truth: np.ndarray) -> float:
    """cheXlocalize's hit (``eval.py``'s ``get_hitrates``): 1.0 when the map's first maximum lies in ``truth``, 0.0
    when it does not, NaN (left out of the hit rate) when ``truth`` is empty (an image without the finding)."""
    h = _as_map(heatmap)
    m = _as_mask(truth, h.shape)
    if not m.any():
        return float("nan")
    return float(pointing_hit_mask(h, m))
