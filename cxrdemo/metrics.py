"""Metrics in CLN's protocol: per-class ROC AUC, IoU accuracy at T(IoU) = 0.1..0.7, and decision thresholds.

- AUC (Table 2): scikit-learn's ``roc_auc_score`` per class; ``None`` when the class has no positive or no negative
  among the images (AUC undefined); the mean is over the classes with a value. A NaN target (an uncertain label under
  policy ``ignore``, :meth:`cxrdemo.datasets.samples.Sample.target`) leaves that image out of that class's AUC only.
- IoU accuracy (Table 1): for a threshold T and a class, the share of that class's ground-truth boxes whose best
  IoU with a predicted box OF THE SAME CLASS is larger than T (strictly); no predicted box counts as IoU 0.
  ``"mean"`` averages the classes that have ground-truth boxes. Classes without boxes get ``None``.
- Thresholds: per class, the probability cut that maximises Youden's J = TPR - FPR on validation (the ROC point
  farthest above the chance diagonal; prevalence-free, unlike F1, which matters with 3 to 20 positives per class).
  Classes without both positives and negatives keep 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .boxes import Box, iou

#: The IoU thresholds of CLN Table 1.
IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def threshold_key(t: float) -> str:
    """JSON key of an IoU threshold (``0.1`` -> ``"0.1"``)."""
    return f"{t:.1f}"


def class_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of one class over the images whose target is not NaN; ``None`` when they lack positives or negatives."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=np.float64).ravel()
    known = ~np.isnan(y)
    y = y[known].astype(int)
    if y.size == 0 or y.sum() in (0, y.size):
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64).ravel()[known]))


def per_class_auc(y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> dict[str, float | None]:
    """``{label: AUC or None}`` for ``(N, C)`` multi-hot targets (NaN: left out of that class) and scores."""
    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    if y_true.shape != scores.shape or y_true.shape[1] != len(classes):
        raise ValueError(f"targets {y_true.shape} and scores {scores.shape} must both be (N, {len(classes)})")
    return {c: class_auc(y_true[:, i], scores[:, i]) for i, c in enumerate(classes)}


def mean_of(values: Mapping[str, float | None]) -> float | None:
    """Mean of the non-``None`` values (``None`` when there is none)."""
    vals = [v for v in values.values() if v is not None]
    return float(np.mean(vals)) if vals else None


@dataclass(frozen=True)
class BoxMatch:
    """One ground-truth box and its best same-class IoU with the boxes of one method (``image``: file name)."""

    label: str
    iou: float
    image: str = ""


def best_matches(truth: Sequence[Box], predicted: Sequence[Box], image: str = "") -> list[BoxMatch]:
    """For each ground-truth box, its best IoU with a predicted box of the same label (0 when none)."""
    out = []
    for gt in truth:
        same = [iou(gt, p) for p in predicted if p is not None and p.label == gt.label]
        out.append(BoxMatch(gt.label, max(same, default=0.0), image))
    return out


def iou_accuracy(
    matches: Sequence[BoxMatch],
    classes: Sequence[str],
    thresholds: Sequence[float] = IOU_THRESHOLDS,
) -> dict[str, dict[str, float | None]]:
    """CLN Table 1: ``{"0.1": {label: share of GT boxes with IoU > T or None, "mean": ...}, ...}``."""
    by_class: dict[str, list[float]] = {c: [] for c in classes}
    for m in matches:
        if m.label in by_class:
            by_class[m.label].append(m.iou)
    out: dict[str, dict[str, float | None]] = {}
    for t in thresholds:
        row: dict[str, float | None] = {}
        for c in classes:
            ious = by_class[c]
            row[c] = float(np.mean([v > t for v in ious])) if ious else None
        row["mean"] = mean_of({c: row[c] for c in classes})
        out[threshold_key(t)] = row
    return out


def youden_threshold(y_true: np.ndarray, scores: np.ndarray, default: float = 0.5) -> float:
    """The score cut maximising TPR - FPR (ties: the higher cut); ``default`` when undefined."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y_true).astype(int).ravel()
    if y.size == 0 or y.sum() in (0, y.size):
        return default
    fpr, tpr, cuts = roc_curve(y, np.asarray(scores, dtype=np.float64).ravel())
    j = tpr - fpr
    best = np.flatnonzero(j == j.max())
    cut = float(cuts[best[0]])  # roc_curve lists cuts in decreasing order: the first is the highest
    return float(min(max(cut, 0.0), 1.0))


def choose_thresholds(y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Per-class decision thresholds on validation probabilities (Youden's J; see module doc)."""
    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    return {c: round(youden_threshold(y_true[:, i], scores[:, i]), 6) for i, c in enumerate(classes)}
