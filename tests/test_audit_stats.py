"""cxrdemo.audit.stats: seeded percentile bootstrap over images, AUC with CI, paired AUC difference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrdemo.audit.stats import (
    Estimate,
    _weighted_auc,
    auc_with_ci,
    bootstrap_mean,
    bootstrap_statistic,
    paired_auc_difference,
    resample_indices,
)


def test_bootstrap_is_deterministic_under_a_seed():
    values = np.random.default_rng(1).normal(size=200)
    a = bootstrap_mean(values, seed=7)
    b = bootstrap_mean(values, seed=7)
    c = bootstrap_mean(values, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.value == pytest.approx(values.mean()) and a.n == 200
    assert a.low < a.value < a.high


def test_ci_covers_the_known_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    big = rng.normal(0.3, 1.0, 4000)
    small = big[:100]
    e_big, e_small = bootstrap_mean(big), bootstrap_mean(small)
    assert e_big.low <= 0.3 <= e_big.high
    assert e_small.low <= 0.3 <= e_small.high
    width_big, width_small = e_big.high - e_big.low, e_small.high - e_small.low
    assert width_big < width_small / 4  # ~ 1/sqrt(40)
    assert width_big == pytest.approx(2 * 1.96 / math.sqrt(4000), rel=0.15)


def test_nan_values_are_dropped_and_empty_is_undefined():
    e = bootstrap_mean([1.0, np.nan, 3.0])
    assert e.value == 2.0 and e.n == 2
    empty = bootstrap_mean([np.nan, np.nan])
    assert empty.n == 0 and math.isnan(empty.value) and math.isnan(empty.low)
    assert empty.to_json() == {"value": None, "low": None, "high": None, "n": 0}
    assert bootstrap_mean([0.5]) == Estimate(0.5, 0.5, 0.5, 1)


def test_grouped_bootstrap_resamples_images_not_values():
    # 20 images, 10 identical values each: the data hold 20 independent numbers, not 200.
    rng = np.random.default_rng(3)
    per_image = rng.normal(0.0, 1.0, 20)
    values = np.repeat(per_image, 10)
    groups = np.repeat([f"img{i:02d}" for i in range(20)], 10)
    grouped = bootstrap_mean(values, groups=groups, seed=0)
    flat = bootstrap_mean(values, seed=0)
    assert grouped.n == 20 and flat.n == 200
    assert grouped.value == pytest.approx(values.mean())
    # Same answer as resampling the 20 image means (equal group sizes): images are the unit.
    by_image = bootstrap_mean(per_image, seed=0)
    assert (grouped.low, grouped.high) == pytest.approx((by_image.low, by_image.high))
    assert (grouped.high - grouped.low) > 2 * (flat.high - flat.low)


def test_grouped_bootstrap_weighs_images_by_their_values():
    # Image a has 3 boxes (values 1), image b has 1 box (value 0): the mean of values is 3/4.
    e = bootstrap_mean([1.0, 1.0, 1.0, 0.0], groups=["a", "a", "a", "b"], n_resamples=200)
    assert e.value == pytest.approx(0.75) and e.n == 2
    assert e.low == 0.0 and e.high == 1.0  # resamples {b, b} and {a, a}
    with pytest.raises(ValueError):
        bootstrap_mean([1.0, 2.0], groups=["a"])


def test_bootstrap_statistic_gets_resampled_indices():
    seen = []

    def stat(idx):
        seen.append(idx.copy())
        return float(len(set(idx.tolist())))

    e = bootstrap_statistic(30, stat, n_resamples=50, seed=4)
    assert e.value == 30.0 and e.n == 30
    assert np.array_equal(seen[0], np.arange(30))
    expected = list(resample_indices(30, 50, 4))
    assert len(seen) == 51 and all(np.array_equal(a, b) for a, b in zip(seen[1:], expected))
    assert e.high < 30  # a resample almost never holds every item
    nan_stat = bootstrap_statistic(5, lambda idx: math.nan if idx[0] == 0 else 1.0, n_resamples=100)
    assert nan_stat.low == nan_stat.high == 1.0  # NaN resamples skipped


def test_auc_with_ci_matches_sklearn_and_skips_one_class_resamples():
    rng = np.random.default_rng(0)
    y = (rng.random(80) < 0.3).astype(int)
    s = y * 0.5 + rng.random(80)
    e = auc_with_ci(y, s, n_resamples=300, seed=1)
    assert e.value == roc_auc_score(y, s)
    assert e.low < e.value < e.high and e.n == 80
    one_positive = np.zeros(12, dtype=int)
    one_positive[3] = 1
    rare = auc_with_ci(one_positive, np.linspace(0, 1, 12), n_resamples=200)
    assert math.isfinite(rare.low) and math.isfinite(rare.high)
    undefined = auc_with_ci(np.zeros(10), np.linspace(0, 1, 10))
    assert math.isnan(undefined.value) and undefined.n == 10


def test_weighted_auc_equals_sklearn_on_the_resampled_arrays():
    rng = np.random.default_rng(5)
    y = (rng.random(40) < 0.4).astype(int)
    s = np.round(rng.random(40), 1)  # many ties
    idx = np.stack(list(resample_indices(40, 30, seed=2)))
    weights = np.stack([np.bincount(i, minlength=40) for i in idx])
    fast = _weighted_auc(y, s, weights)
    for k, i in enumerate(idx):
        if y[i].min() == y[i].max():
            assert math.isnan(fast[k])
        else:
            assert fast[k] == pytest.approx(roc_auc_score(y[i], s[i]), abs=1e-12)


def test_paired_auc_difference_by_hand():
    y = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    a = np.array([[0.1, 0.9], [0.4, 0.2], [0.35, 0.8], [0.8, 0.3]])
    b = np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.5], [0.4, 0.5]])
    out = paired_auc_difference(y, a, b, ["L1", "L2"], n_resamples=200, seed=0)
    # L1: positives 0.35, 0.8 vs negatives 0.1, 0.4 -> 3 of 4 pairs ordered: AUC 0.75; B orders all: 1.0.
    l1 = out.per_label["L1"]
    assert l1.auc_a.value == 0.75 and l1.auc_b.value == 1.0
    assert l1.difference.value == roc_auc_score(y[:, 0], a[:, 0]) - roc_auc_score(y[:, 0], b[:, 0]) == -0.25
    # L2: A separates perfectly (1.0); B is constant: every pair tied, 0.5.
    l2 = out.per_label["L2"]
    assert (l2.auc_a.value, l2.auc_b.value, l2.difference.value) == (1.0, 0.5, 0.5)
    assert out.mean.auc_a.value == pytest.approx(0.875) and out.mean.auc_b.value == pytest.approx(0.75)
    assert out.mean.difference.value == pytest.approx(0.125)
    assert out.labels_in_mean == ["L1", "L2"]
    for comp in (l1, l2, out.mean):
        for est in (comp.auc_a, comp.auc_b, comp.difference):
            assert est.low <= est.high and est.n == 4
        assert 0 < comp.resamples < 200  # resamples of 4 images often lack a class: skipped


def test_paired_uses_the_same_resamples_as_auc_with_ci_and_skips_undefined_labels():
    rng = np.random.default_rng(9)
    n = 120
    y = (rng.random((n, 3)) < 0.3).astype(int)
    y[:, 2] = 0  # no positive: AUC undefined, out of the mean
    a = y * 0.6 + rng.random((n, 3))
    b = y * 0.3 + rng.random((n, 3))
    out = paired_auc_difference(y, a, b, ["x", "y", "z"], n_resamples=300, seed=3)
    for j, label in enumerate(["x", "y"]):
        ref = auc_with_ci(y[:, j], a[:, j], n_resamples=300, seed=3)
        got = out.per_label[label].auc_a
        assert got.value == ref.value
        assert (got.low, got.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert math.isnan(out.per_label["z"].difference.value)
    assert out.labels_in_mean == ["x", "y"]
    assert out.mean.difference.value == pytest.approx(
        np.mean([roc_auc_score(y[:, j], a[:, j]) - roc_auc_score(y[:, j], b[:, j]) for j in range(2)])
    )
    assert out.mean.difference.low > 0  # A is clearly better on 120 images
    doc = json.loads(json.dumps(out.to_json()))
    assert doc["per_label"]["z"]["difference"]["value"] is None
    assert doc["bootstrap"] == {"n_resamples": 300, "seed": 3, "level": 0.95, "unit": "image"}
    again = paired_auc_difference(y, a, b, ["x", "y", "z"], n_resamples=300, seed=3)
    assert again.to_json(ndigits=None) == out.to_json(ndigits=None)  # deterministic


def test_paired_leaves_a_nan_label_out_of_its_label_only():
    rng = np.random.default_rng(4)
    n = 60
    y = (rng.random((n, 2)) < 0.4).astype(float)
    a, b = y * 0.5 + rng.random((n, 2)), rng.random((n, 2))
    full = paired_auc_difference(y, a, b, ["x", "y"], n_resamples=200, seed=1)
    unsure = y.copy()
    unsure[[3, 7], 1] = np.nan  # two images uncertain on "y"
    out = paired_auc_difference(unsure, a, b, ["x", "y"], n_resamples=200, seed=1)
    assert out.per_label["x"] == full.per_label["x"]  # the same resamples: "x" is untouched, to the bit
    keep = ~np.isnan(unsure[:, 1])
    got = out.per_label["y"]
    assert got.auc_a.value == pytest.approx(roc_auc_score(y[keep, 1], a[keep, 1]), abs=1e-12)
    assert got.auc_b.value == pytest.approx(roc_auc_score(y[keep, 1], b[keep, 1]), abs=1e-12)
    assert got.auc_a.n == n - 2 and out.mean.auc_a.n == n and got.auc_a.low < got.auc_a.value < got.auc_a.high
    assert got.auc_a.value != full.per_label["y"].auc_a.value
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        paired_auc_difference(np.full((4, 1), 0.5), a[:4, :1], b[:4, :1], ["x"])


def test_paired_refuses_mismatched_shapes():
    with pytest.raises(ValueError):
        paired_auc_difference(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 3)), ["a", "b"])
