"""Reference levels for the plausibility metrics: what maps that ignore the model score on the same boxes.

A number such as "energy in box 0.110" means nothing alone: a small box holds little of any map. So every metric
is also computed, by the same code (:func:`cxrdemo.audit.maps.map_metrics` and :func:`cxrdemo.explain.cam_box`, on
a map in the model frame resized to the original pixels like a CAM), for two maps that ignore the image:

- ``uniform``: a uniformly random map. For the pointing game and the energy in box the chance level is analytic:
  the maximum of an i.i.d. random map is equally likely at every pixel, so the pointing game hits with probability
  (pixels of the box grown by the tolerance) / (pixels of the image); the expected share of an i.i.d. map's mass
  inside the box is (pixels of the box) / (pixels of the image) (exactly, for a constant map). For the mask IoUs and
  the CAM-box IoU there is no closed form: they are measured on one seeded i.i.d. uniform map of the model's input
  size (for a 1024 px image a box holds thousands of pixels, so one draw's IoU is close to its expectation).
- ``center``: a fixed centred Gaussian (sigma a quarter of the side, peak 1): the centre bias of chest films, where
  most findings lie near the middle. A method that does no better than this map has not shown that it looks at
  the finding. Its per-box values get the same bootstrap CIs as the methods'.

:func:`reference_values` gives per box the values of both maps; :mod:`cxrdemo.audit.verdict` compares each method
with them box by box (paired).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..boxes import Box, iou
from .result import CaseRow
from .maps import FIXED_THRESHOLDS, MAP_METRICS, _inside, _otsu_level, resize_map

#: The references, in report order.
REFERENCES: tuple[str, ...] = ("uniform", "center")
#: What each reference is, for the report and the page.
REFERENCE_NAMES: dict[str, str] = {
    "uniform": "uniformly random map (chance)",
    "center": "fixed centred map (centre bias)",
}
#: The metrics with a reference (the map metrics and the CAM box's IoU).
REFERENCE_METRICS: tuple[str, ...] = (*MAP_METRICS, "cam_iou")
#: The centred map's Gaussian sigma, as a share of the side.
CENTER_SIGMA = 0.25


def center_map(size: int) -> np.ndarray:
    """The fixed centred map: a Gaussian of sigma :data:`CENTER_SIGMA` x ``size`` at the centre, peak 1."""
    c = (np.arange(size, dtype=np.float64) + 0.5 - size / 2) / (CENTER_SIGMA * size)
    g = np.exp(-0.5 * c**2)
    return np.outer(g, g).astype(np.float32)


def uniform_map(size: int, seed: int) -> np.ndarray:
    """A seeded i.i.d. uniform [0, 1) map of ``size`` x ``size`` (the model frame)."""
    return np.random.default_rng(seed).random((size, size), dtype=np.float64).astype(np.float32)


@dataclass
class _MapFacts:
    """One model-frame map resized to one image size, with what every box's metrics need (computed once)."""

    full: np.ndarray
    argmax: tuple[int, int]
    total: float
    masks: dict[str, np.ndarray]
    counts: dict[str, int]
    cam_box: Box | None

    @classmethod
    def of(cls, heatmap: np.ndarray, width: int, height: int, cam_threshold: int) -> "_MapFacts":
        from ..explain import cam_box

        full = resize_map(heatmap, width, height).astype(np.float64)
        positive = full > 0.0
        scaled = full * 255.0
        level = _otsu_level(full)
        masks = {"mask_iou_otsu": (full >= full.min() if level is None else scaled >= level + 1) & positive}
        for t in FIXED_THRESHOLDS:
            masks[f"mask_iou_{t}"] = (scaled >= t) & positive
        r, c = np.unravel_index(int(np.argmax(full)), full.shape)
        return cls(
            full=full, argmax=(int(r), int(c)), total=float(np.clip(full, 0.0, None).sum()), masks=masks,
            counts={k: int(np.count_nonzero(m)) for k, m in masks.items()},
            cam_box=cam_box(heatmap, cam_threshold, width=width, height=height),
        )  # fmt: skip

    def metrics(self, box: Box, tolerance: float) -> dict[str, float]:
        """The values :func:`~cxrdemo.audit.maps.map_metrics` gives for ``box`` (same pixel rule), and the CAM-box
        IoU."""
        h, w = self.full.shape
        rows, cols = np.flatnonzero(_inside(h, box.y1, box.y2)), np.flatnonzero(_inside(w, box.x1, box.x2))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if rows.size and cols.size else None
        area = int(rows.size * cols.size)
        r, c = self.argmax
        t = float(tolerance)
        out = {"pointing_game": float(box.x1 - t <= c + 0.5 <= box.x2 + t and box.y1 - t <= r + 0.5 <= box.y2 + t)}
        inside = float(np.clip(self.full[window], 0.0, None).sum()) if window else 0.0
        out["energy_in_box"] = float(min(max(inside / self.total, 0.0), 1.0)) if self.total > 0 else 0.0
        for key, mask in self.masks.items():
            inter = int(np.count_nonzero(mask[window])) if window else 0
            union = self.counts[key] + area - inter
            out[key] = inter / union if union > 0 else 0.0
        out["cam_iou"] = iou(box, self.cam_box) if self.cam_box is not None else 0.0
        return out


    def mask_metrics(self, mask: np.ndarray, box: Box, tolerance: float) -> dict[str, float]:
        """The values :func:`~cxrdemo.audit.maps.mask_metrics` gives for ``mask`` (the region path), and the CAM-box
        IoU with ``box`` (the mask's bounding box)."""
        from .maps import pointing_hit_mask

        out = {"pointing_game": float(pointing_hit_mask(self.full, mask, tolerance))}
        inside = float(np.clip(self.full[mask], 0.0, None).sum())
        out["energy_in_box"] = float(min(max(inside / self.total, 0.0), 1.0)) if self.total > 0 else 0.0
        area = int(np.count_nonzero(mask))
        for key, m in self.masks.items():
            inter = int(np.count_nonzero(m & mask))
            union = self.counts[key] + area - inter
            out[key] = inter / union if union > 0 else 0.0
        out["cam_iou"] = iou(box, self.cam_box) if self.cam_box is not None else 0.0
        return out


def mask_fraction(mask: np.ndarray, grow: float = 0.0) -> float:
    """The share of the image's pixels in ``mask`` dilated by ``floor(grow)`` pixels (a square neighbourhood, the
    region path's tolerance): the uniform map's analytic chance level of the pointing game (``grow`` = tolerance)
    and of the energy in the region (``grow`` = 0)."""
    m = np.asarray(mask, dtype=bool)
    k = int(np.floor(grow))
    if k > 0 and m.any():
        from scipy.ndimage import binary_dilation

        m = binary_dilation(m, structure=np.ones((2 * k + 1, 2 * k + 1), dtype=bool))
    return int(np.count_nonzero(m)) / float(m.size)


class ReferenceMaps:
    """The reference maps of one run, resized per image size on demand (the last :attr:`keep` sizes are kept), for
    the cases whose truth is a mask: their reference values are computed with the case (the masks are not kept)."""

    keep = 4

    def __init__(self, input_size: int, cam_threshold: int, seed: int = 0) -> None:
        self.maps = {"uniform": uniform_map(int(input_size), seed), "center": center_map(int(input_size))}
        self.cam_threshold = int(cam_threshold)
        self._facts: dict[tuple[str, int, int], _MapFacts] = {}

    def facts(self, name: str, width: int, height: int) -> _MapFacts:
        """The map ``name`` resized to ``width`` x ``height`` (with its masks and CAM box)."""
        key = (name, int(width), int(height))
        if key not in self._facts:
            while len(self._facts) >= self.keep * len(self.maps):
                self._facts.pop(next(iter(self._facts)))
            self._facts[key] = _MapFacts.of(self.maps[name], int(width), int(height), self.cam_threshold)
        return self._facts[key]

    def values(self, masks: Sequence[np.ndarray], boxes: Sequence[Box], tolerance: float) -> dict[str, dict[str, float]]:
        """Per reference, every metric of :data:`REFERENCE_METRICS` averaged over the readers' ``masks`` (each with
        its bounding box in ``boxes``), the uniform map's pointing game and energy analytic (module doc)."""
        height, width = masks[0].shape
        out: dict[str, dict[str, float]] = {}
        for name in REFERENCES:
            facts = self.facts(name, width, height)
            per = [facts.mask_metrics(m, b, tolerance) for m, b in zip(masks, boxes)]
            if name == "uniform":
                for v, m in zip(per, masks):
                    v["pointing_game"] = mask_fraction(m, tolerance)
                    v["energy_in_box"] = mask_fraction(m)
            out[name] = {k: float(np.mean([v[k] for v in per])) for k in REFERENCE_METRICS}
        return out


def _box_fraction(box: Box, width: int, height: int, grow: float = 0.0) -> float:
    """The share of the image's pixels in ``box`` grown by ``grow`` (the centre rule of :mod:`.maps`)."""
    rows = int(np.count_nonzero(_inside(height, box.y1 - grow, box.y2 + grow)))
    cols = int(np.count_nonzero(_inside(width, box.x1 - grow, box.x2 + grow)))
    return rows * cols / float(width * height)


def reference_values(
    cases: Sequence[CaseRow], input_size: int, cam_threshold: int, tolerance: float = 0.0, seed: int = 0
) -> dict[str, list[dict[str, float]]]:
    """Per reference, per case (one per ground-truth box; pass one method's cases), every metric of
    :data:`REFERENCE_METRICS` (see the module doc for how each is obtained)."""
    maps = {"uniform": uniform_map(int(input_size), seed), "center": center_map(int(input_size))}
    facts: dict[tuple[str, int, int], _MapFacts] = {}
    out: dict[str, list[dict[str, float]]] = {name: [] for name in REFERENCES}
    for case in cases:
        if case.references is not None:  # a mask case: computed with the case (ReferenceMaps)
            for name in REFERENCES:
                out[name].append(dict(case.references[name]))
            continue
        box = Box(*case.box, case.label)
        for name in REFERENCES:
            key = (name, case.width, case.height)
            if key not in facts:
                facts[key] = _MapFacts.of(maps[name], case.width, case.height, cam_threshold)
            values = facts[key].metrics(box, tolerance)
            if name == "uniform":  # the analytic chance levels (module doc)
                values["pointing_game"] = _box_fraction(box, case.width, case.height, tolerance)
                values["energy_in_box"] = _box_fraction(box, case.width, case.height)
            out[name].append(values)
    return out
