"""The demo's threshold rule (a fixed specificity per class, chosen on out-of-fold predictions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cxrdemo.errors import InputError
from cxrdemo.training.thresholds import (
    choose_specificity_thresholds,
    default_specificity,
    findings_per_image,
    specificity_threshold,
)

CLASSES = [f"c{i}" for i in range(14)]


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multi-hot labels with prevalences from 1% to 20% (like NIH's rare and common findings)."""
    prevalence = np.linspace(0.01, 0.2, len(CLASSES))
    return (rng.random((n, len(CLASSES))) < prevalence).astype(float)


def test_exactly_k_negatives_at_or_above_each_threshold():
    """With distinct scores, each class leaves exactly floor((1 - S) * negatives) negatives at or above its cut:
    an exact count, so no tolerance is needed."""
    rng = np.random.default_rng(0)
    y = _labels(rng, 700)
    scores = rng.random(y.shape)  # continuous: distinct with probability 1
    spec = default_specificity(len(CLASSES))
    for t in choose_specificity_thresholds(y, scores, CLASSES, spec):
        i = CLASSES.index(t.label)
        neg = scores[y[:, i] < 0.5, i]
        assert int((neg >= t.threshold).sum()) == math.floor((1 - spec) * neg.size + 1e-9)
        assert t.negatives == neg.size and t.positives == int(y[:, i].sum())


def test_no_signal_median_image_shows_one_finding():
    """Scores independent of the labels: every class flags a share 1/14 of its negatives and, having no signal, about
    the same share of its positives, so an image's count is ~Binomial(14, 1/14): P(0) = (13/14)^14 = 0.354 and
    P(<= 1) = 0.735. With 2,000 images the empirical shares have a standard error of ~0.011, so the median is 1 by
    more than 13 standard errors on either side (the property, not a tuned number)."""
    rng = np.random.default_rng(1)
    y = _labels(rng, 2000)
    scores = rng.random(y.shape)
    cuts = [t.threshold for t in choose_specificity_thresholds(y, scores, CLASSES)]
    counts = findings_per_image(scores, cuts)
    assert np.median(counts) == 1
    assert (counts == 0).mean() < 0.5 < (counts <= 1).mean()


def test_perfect_scores_flag_every_positive_and_the_median_matches_the_labels():
    """Positives all score above every negative: the cut lies among the top negatives, so sensitivity is 1 and
    each image shows its own findings plus at most the allowed false ones."""
    rng = np.random.default_rng(2)
    y = _labels(rng, 1000)
    scores = np.where(y > 0.5, 0.9 + 0.1 * rng.random(y.shape), 0.8 * rng.random(y.shape))
    picked = choose_specificity_thresholds(y, scores, CLASSES)
    assert all(t.sensitivity == 1.0 for t in picked)
    counts = findings_per_image(scores, [t.threshold for t in picked])
    assert (counts >= y.sum(axis=1)).all()
    assert counts.sum() - y.sum() == sum(math.floor(t.negatives / 14 + 1e-9) for t in picked)


def test_ties_never_exceed_the_allowed_false_findings():
    """Tied negative scores at the cut cannot be split: the cut goes above the tie, so fewer, never more, negatives
    than allowed are flagged."""
    y = np.zeros(100)
    scores = np.r_[np.full(20, 0.7), np.linspace(0.0, 0.5, 80)]  # 20 tied top negatives; 10% allowed
    t = specificity_threshold(y, scores, 0.9)
    assert (scores >= t).sum() <= 10
    assert t > 0.7


def test_rare_class_is_marked_and_bad_input_is_one_line():
    y = np.zeros((50, 2))
    y[:2, 0] = 1  # 2 positives < 5
    y[:10, 1] = 1
    picked = choose_specificity_thresholds(y, np.random.default_rng(3).random((50, 2)), ["rare", "common"], 0.9, min_positives=5)
    assert [t.reliable for t in picked] == [False, True]
    with pytest.raises(InputError, match="must lie in"):
        specificity_threshold(y[:, 0], y[:, 0], 1.0)
    with pytest.raises(InputError, match="must both be"):
        choose_specificity_thresholds(y, y[:, :1], ["rare", "common"])
