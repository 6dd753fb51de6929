"""Decision thresholds for the demo: a fixed specificity per class, chosen on out-of-fold predictions.

The page ticks every finding whose probability is at or above its class threshold (``p >= t``). Youden's J on a
small validation split put thresholds so low that the median image showed about six findings, where NIH's labels
carry one or two. The rule here bounds the false findings instead:

- per class, ``t`` is the lowest cut at which at most ``floor((1 - specificity) * negatives)`` of the class's
  negative images score ``>= t`` (the midpoint between two neighbouring negative scores, so ties in the positives
  do not matter);
- with ``specificity = 1 - 1 / C`` for ``C`` classes, an image free of every finding is expected to show
  ``C * (1 - specificity) = 1`` false finding in all (fewer when classes are correlated), whatever the classes'
  prevalence or the model's AUC;
- the rule uses only negatives, so it is defined for rare classes too (every class of the shared set has hundreds
  of negatives); a class with fewer than ``min_positives`` positives gets the same rule, and its sensitivity at the
  threshold is flagged as unreliable in the card.

Torch-free (numpy only): the app and the audit can import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class ClassThreshold:
    """One class's threshold and what it does on the predictions it was chosen on."""

    label: str
    threshold: float
    positives: int
    negatives: int
    sensitivity: float | None  # share of positives at or above the threshold (None without positives)
    specificity: float | None  # share of negatives below it
    reliable: bool  # at least ``min_positives`` positives (the sensitivity means something)


def default_specificity(n_classes: int) -> float:
    """``1 - 1 / n_classes``: about one false finding per finding-free image over all classes."""
    if n_classes < 1:
        raise InputError("need at least one class to choose thresholds")
    return 1.0 - 1.0 / n_classes


def specificity_threshold(y_true: np.ndarray, scores: np.ndarray, specificity: float) -> float:
    """The cut ``t`` (``p >= t`` is positive) that leaves exactly ``floor((1 - specificity) * n_neg)`` negatives at or
    above it when the negatives' scores are distinct: the midpoint between the k-th and (k+1)-th highest negative
    score (above the highest when k = 0). Without negatives: 1.0 (never positive)."""
    if not 0.0 < specificity < 1.0:
        raise InputError(f"specificity {specificity} must lie in (0, 1)")
    y = np.asarray(y_true).ravel() > 0.5
    s = np.asarray(scores, dtype=np.float64).ravel()
    neg = np.sort(s[~y])[::-1]  # highest first
    if neg.size == 0:
        return 1.0
    k = int(math.floor((1.0 - specificity) * neg.size + 1e-9))
    if k >= neg.size:
        return float(neg[-1])
    upper = neg[k - 1] if k > 0 else 1.0
    cut = (upper + neg[k]) / 2.0
    if cut <= neg[k]:  # the two scores are equal or adjacent floats: the next float above the (k+1)-th
        cut = float(np.nextafter(neg[k], np.inf))
    return float(cut)


def choose_specificity_thresholds(
    y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str], specificity: float | None = None, min_positives: int = 5
) -> list[ClassThreshold]:
    """Per-class thresholds by :func:`specificity_threshold` (default ``1 - 1/C``), with their sensitivity and
    specificity on these predictions."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if y_true.shape != scores.shape or y_true.ndim != 2 or y_true.shape[1] != len(classes):
        raise InputError(f"labels {y_true.shape} and scores {scores.shape} must both be (images, {len(classes)})")
    spec = default_specificity(len(classes)) if specificity is None else specificity
    out = []
    for i, label in enumerate(classes):
        y, s = y_true[:, i] > 0.5, scores[:, i]
        t = specificity_threshold(y, s, spec)
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        sens = float((s[y] >= t).mean()) if n_pos else None
        specf = float((s[~y] < t).mean()) if n_neg else None
        out.append(ClassThreshold(label, t, n_pos, n_neg, sens, specf, n_pos >= min_positives))
    return out


def findings_per_image(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """How many classes each image shows at or above their thresholds (``(images,)`` ints)."""
    s = np.asarray(scores, dtype=np.float64)
    return (s >= np.asarray(thresholds, dtype=np.float64)[None, :]).sum(axis=1)
