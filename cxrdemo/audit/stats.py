"""Estimates with 95 % bootstrap confidence intervals over images (numpy / scikit-learn; no torch).

Every figure of an audit is an :class:`Estimate`: the value on the whole data set plus a percentile bootstrap
interval (Efron & Tibshirani 1993): draw ``n_resamples`` (1,000) samples of the images with replacement from a
seeded ``numpy.random.default_rng(seed)``, recompute the statistic on each, and take the ``(1 - level) / 2`` and
``(1 + level) / 2`` percentiles of those values. The unit resampled is always the image: when an image contributes
several values (several boxes), :func:`bootstrap_mean` takes ``groups`` and resamples whole images.

Resampled indices are drawn one resample at a time, ``rng.integers(0, n, n)``, by every function here, so two
functions called with the same ``n`` and ``seed`` see the same resamples (e.g. :func:`auc_with_ci` and the AUCs of
:func:`paired_auc_difference`). A resample on which the statistic is undefined (NaN: an AUC on a resample without a
positive or without a negative) is skipped; the interval comes from the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np


def _json_float(v: float, ndigits: int | None) -> float | None:
    v = float(v)
    if not math.isfinite(v):
        return None
    return round(v, ndigits) if ndigits is not None else v


@dataclass(frozen=True)
class Estimate:
    """A value with its bootstrap confidence interval.

    Attributes:
        value: the statistic on the whole sample (NaN when undefined).
        low, high: the percentile bootstrap interval (NaN when undefined).
        n: the number of units behind the value (images, or values when no groups were given).
    """

    value: float
    low: float
    high: float
    n: int

    def to_json(self, ndigits: int | None = 6) -> dict[str, Any]:
        """``{"value", "low", "high", "n"}`` with NaN written as ``null``."""
        return {
            "value": _json_float(self.value, ndigits),
            "low": _json_float(self.low, ndigits),
            "high": _json_float(self.high, ndigits),
            "n": int(self.n),
        }

    @classmethod
    def undefined(cls, n: int = 0) -> "Estimate":
        """The estimate of a statistic that cannot be computed."""
        return cls(math.nan, math.nan, math.nan, int(n))


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, not {level}")
    return level


def resample_indices(n_items: int, n_resamples: int = 1000, seed: int = 0) -> Iterator[np.ndarray]:
    """The bootstrap resamples of ``range(n_items)``: ``n_resamples`` arrays of ``n_items`` indices (with replacement)."""
    if n_items <= 0:
        return
    rng = np.random.default_rng(seed)
    for _ in range(int(n_resamples)):
        yield rng.integers(0, n_items, n_items)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(samples, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Mean of ``values`` with a percentile bootstrap CI.

    Args:
        values: one number per observation; NaN values are dropped first.
        groups: one image id per value, or ``None`` (every value its own image). With groups, whole images are
            resampled and the statistic is the mean of all the values of the drawn images (an image drawn twice
            counts twice), so an image with three boxes weighs three times, in the value and in every resample.
        n_resamples, seed, level: the bootstrap (see the module doc).

    Returns:
        The :class:`Estimate`, ``n`` = number of images (groups) with at least one non-NaN value.
    """
    level = _check_level(level)
    vals = np.asarray(values, dtype=np.float64).ravel()
    if groups is None:
        keys = np.arange(vals.size)
    else:
        keys = np.asarray(groups, dtype=object).ravel()
        if keys.size != vals.size:
            raise ValueError(f"{keys.size} groups for {vals.size} values")
    keep = ~np.isnan(vals)
    vals, keys = vals[keep], keys[keep]
    if vals.size == 0:
        return Estimate.undefined(0)
    if groups is None:
        sums, counts = vals, np.ones_like(vals)
    else:
        _, inverse = np.unique(keys.astype(str), return_inverse=True)
        sums = np.bincount(inverse, weights=vals)
        counts = np.bincount(inverse).astype(np.float64)
    n = int(sums.size)
    value = float(vals.mean())
    boot = np.array([sums[idx].sum() / counts[idx].sum() for idx in resample_indices(n, n_resamples, seed)])
    low, high = _interval(boot, level)
    return Estimate(value, low, high, n)


def bootstrap_statistic(
    n_items: int,
    statistic: Callable[[np.ndarray], float],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Any statistic of ``n_items`` images with a percentile bootstrap CI.

    ``statistic(indices)`` gets an int array of image indices (``arange(n_items)`` for the value, then each
    resample, with repeats) and returns a float; resamples where it returns NaN are skipped.
    """
    level = _check_level(level)
    n_items = int(n_items)
    if n_items <= 0:
        return Estimate.undefined(0)
    value = float(statistic(np.arange(n_items)))
    boot = np.array([float(statistic(idx)) for idx in resample_indices(n_items, n_resamples, seed)], dtype=np.float64)
    low, high = _interval(boot, level)
    return Estimate(value, low, high, n_items)


def _binary_labels(y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true, dtype=np.float64)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    return y.astype(np.int64)


def _labels_or_unknown(y_true: np.ndarray) -> np.ndarray:
    """``y_true`` as float64 after checking every value is 0, 1 or NaN (a label left out, e.g. uncertain)."""
    y = np.asarray(y_true, dtype=np.float64)
    if not (np.isin(y, (0.0, 1.0)) | np.isnan(y)).all():
        raise ValueError("labels must be 0, 1 or NaN (left out)")
    return y


def _finite_scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite numbers")
    return s


def _sk_auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if y.size == 0 or y.min() == y.max():
        return math.nan
    return float(roc_auc_score(y, s))


def auc_with_ci(
    y_true: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """ROC AUC (``sklearn.metrics.roc_auc_score``) of one label with a bootstrap CI over images.

    Resamples lacking positives or negatives are skipped; an all-NaN estimate when ``y_true`` itself has a single
    class (AUC undefined).
    """
    y = _binary_labels(np.asarray(y_true).ravel())
    s = _finite_scores(np.asarray(scores).ravel())
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels for {s.size} scores")
    if y.size == 0 or y.min() == y.max():
        return Estimate.undefined(int(y.size))
    return bootstrap_statistic(y.size, lambda idx: _sk_auc(y[idx], s[idx]), n_resamples, seed, level)


def _weighted_auc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of integer ``weights`` ``(R, N)`` (how often each image is drawn); NaN when undefined.

    The Mann-Whitney form with ties counted one half, i.e. exactly sklearn's trapezoidal ROC AUC of the resampled
    arrays (the tests check it against ``roc_auc_score``), without building them: one pass per row over the
    scores sorted once.
    """
    _, inverse = np.unique(s, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sorted_groups = inverse[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    w = weights[:, order].astype(np.float64)
    pos = y[order].astype(bool)
    pos_g = np.add.reduceat(np.where(pos[None, :], w, 0.0), starts, axis=1)
    neg_g = np.add.reduceat(np.where(pos[None, :], 0.0, w), starts, axis=1)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    n_pos, n_neg = pos_g.sum(axis=1), neg_g.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = math.nan
    return auc


def _resample_weights(n_items: int, n_resamples: int, seed: int, chunk: int = 256) -> Iterator[np.ndarray]:
    """The resamples of :func:`resample_indices` as ``(r, n_items)`` draw counts, ``chunk`` resamples at a time."""
    rows: list[np.ndarray] = []
    for idx in resample_indices(n_items, n_resamples, seed):
        rows.append(np.bincount(idx, minlength=n_items))
        if len(rows) == chunk:
            yield np.stack(rows)
            rows = []
    if rows:
        yield np.stack(rows)


@dataclass(frozen=True)
class AucComparison:
    """AUC of models A and B on the same images and their difference A - B (each with its CI).

    ``resamples``: the bootstrap resamples on which the statistic was defined (the others were skipped).
    """

    auc_a: Estimate
    auc_b: Estimate
    difference: Estimate
    resamples: int

    def to_json(self, ndigits: int | None = 6) -> dict[str, Any]:
        return {
            "auc_a": self.auc_a.to_json(ndigits),
            "auc_b": self.auc_b.to_json(ndigits),
            "difference": self.difference.to_json(ndigits),
            "resamples": int(self.resamples),
        }


@dataclass(frozen=True)
class PairedComparison:
    """Per-label and mean ROC AUC of two models on the same images, from the same bootstrap resamples.

    Attributes:
        per_label: label -> :class:`AucComparison` (NaN estimates for a label without positives or negatives).
        mean: the same for the mean AUC over ``labels_in_mean``; a resample where one of them lacks positives or
            negatives is skipped (so every resample averages the same labels).
        labels_in_mean: the labels with both positives and negatives among the images.
        n_resamples, seed, level: the bootstrap.
    """

    per_label: dict[str, AucComparison]
    mean: AucComparison
    labels_in_mean: list[str]
    n_resamples: int
    seed: int
    level: float = 0.95
    labels: list[str] = field(default_factory=list)

    def to_json(self, ndigits: int | None = 6) -> dict[str, Any]:
        return {
            "per_label": {k: v.to_json(ndigits) for k, v in self.per_label.items()},
            "mean": self.mean.to_json(ndigits),
            "labels_in_mean": list(self.labels_in_mean),
            "bootstrap": {"n_resamples": int(self.n_resamples), "seed": int(self.seed), "level": float(self.level), "unit": "image"},
        }


def paired_auc_difference(
    y_true: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedComparison:
    """Compare two models' ROC AUCs on the same ``N`` images, label by label and on average.

    Args:
        y_true: ``(N, L)`` 0/1 labels; NaN where an image is left out of that label (an uncertain label under policy
            ``ignore``): it counts for the other labels, and a label's ``n`` is the images that count for it.
        scores_a, scores_b: ``(N, L)`` scores of models A and B for the same images in the same order.
        labels: the ``L`` label names.

    The point values are sklearn's ``roc_auc_score`` on all images (difference = A - B exactly). Every interval
    comes from the SAME resampled image indices (:func:`resample_indices` with ``seed``) for A, B, every label and
    the mean, so the interval of the difference accounts for the correlation between the two models.
    """
    level = _check_level(level)
    y = _labels_or_unknown(y_true)
    a = _finite_scores(scores_a)
    b = _finite_scores(scores_b)
    labels = [str(label) for label in labels]
    if y.ndim != 2 or y.shape != a.shape or y.shape != b.shape or y.shape[1] != len(labels):
        raise ValueError(f"labels {y.shape}, scores A {a.shape} and B {b.shape} must all be (N, {len(labels)})")
    n, n_labels = y.shape
    known = ~np.isnan(y)
    counted = known.sum(axis=0)
    # per label: the images that count for it, their labels and both models' scores
    cols = [(k, y[k, j].astype(np.int64), a[k, j], b[k, j]) for j, k in enumerate(known.T)]

    point_a = np.array([_sk_auc(yj, aj) for _, yj, aj, _ in cols])
    point_b = np.array([_sk_auc(yj, bj) for _, yj, _, bj in cols])
    defined = np.isfinite(point_a) & np.isfinite(point_b)

    boot_a = np.full((int(n_resamples), n_labels), math.nan)
    boot_b = np.full((int(n_resamples), n_labels), math.nan)
    row = 0
    for weights in _resample_weights(n, n_resamples, seed):
        rows = slice(row, row + weights.shape[0])
        for j in np.flatnonzero(defined):
            k, yj, aj, bj = cols[j]
            boot_a[rows, j] = _weighted_auc(yj, aj, weights[:, k])
            boot_b[rows, j] = _weighted_auc(yj, bj, weights[:, k])
        row += weights.shape[0]

    def comparison(pa: float, pb: float, ba: np.ndarray, bb: np.ndarray, n: int = n) -> AucComparison:
        if not (math.isfinite(pa) and math.isfinite(pb)):
            return AucComparison(Estimate.undefined(n), Estimate.undefined(n), Estimate.undefined(n), 0)
        ok = np.isfinite(ba) & np.isfinite(bb)
        est = []
        for point, boot in ((pa, ba[ok]), (pb, bb[ok]), (pa - pb, ba[ok] - bb[ok])):
            low, high = _interval(boot, level) if boot.size else (math.nan, math.nan)
            est.append(Estimate(float(point), low, high, n))
        return AucComparison(est[0], est[1], est[2], int(ok.sum()))

    per_label = {
        labels[j]: comparison(point_a[j], point_b[j], boot_a[:, j], boot_b[:, j], int(counted[j])) for j in range(n_labels)
    }
    if defined.any():
        # A NaN in any averaged label makes the resample's mean NaN: that resample is skipped.
        mean = comparison(
            float(point_a[defined].mean()),
            float(point_b[defined].mean()),
            boot_a[:, defined].mean(axis=1),
            boot_b[:, defined].mean(axis=1),
        )
    else:
        mean = AucComparison(Estimate.undefined(n), Estimate.undefined(n), Estimate.undefined(n), 0)
    return PairedComparison(
        per_label=per_label,
        mean=mean,
        labels_in_mean=[labels[j] for j in np.flatnonzero(defined)],
        n_resamples=int(n_resamples),
        seed=int(seed),
        level=level,
        labels=labels,
    )


def interval_of(samples: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap ``samples`` at ``level`` (NaN samples, i.e. resamples on which the
    statistic was undefined, are skipped; ``(nan, nan)`` when none is left): for callers that compute many
    statistics on the same :func:`resample_indices` at once (:mod:`cxrdemo.audit.detection`)."""
    return _interval(np.asarray(samples, dtype=np.float64), _check_level(level))
