"""Metrics and losses against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cxrdemo.boxes import Box
from cxrdemo.training.losses import cln_loss, pairwise_iou, positive_weights
from cxrdemo.metrics import (
    IOU_THRESHOLDS,
    BoxMatch,
    best_matches,
    choose_thresholds,
    class_auc,
    iou_accuracy,
    mean_of,
    per_class_auc,
    youden_threshold,
)


def test_iou_accuracy_hand_computed():
    truth = [
        Box(0, 0, 10, 10, "A"),  # predicted A covers half of it: IoU 0.5
        Box(20, 20, 30, 30, "A"),  # no A box overlaps: IoU 0
        Box(0, 0, 10, 10, "B"),  # exact B box: IoU 1
    ]
    predicted = [Box(0, 0, 10, 5, "A"), Box(0, 0, 10, 10, "B"), Box(20, 20, 30, 30, "B")]  # B box on A2 must not count
    matches = best_matches(truth, predicted)
    assert [m.label for m in matches] == ["A", "A", "B"]
    assert [round(m.iou, 6) for m in matches] == [0.5, 0.0, 1.0]
    table = iou_accuracy(matches, ["A", "B", "C"])
    assert list(table) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert table["0.1"] == {"A": 0.5, "B": 1.0, "C": None, "mean": 0.75}
    # "exceeds" is strict: IoU 0.5 does not count at T = 0.5
    assert table["0.5"] == {"A": 0.0, "B": 1.0, "C": None, "mean": 0.5}
    assert table["0.7"]["mean"] == 0.5


def test_iou_accuracy_no_boxes_and_missing_predictions():
    table = iou_accuracy([], ["A"])
    assert all(row == {"A": None, "mean": None} for row in table.values())
    matches = best_matches([Box(0, 0, 5, 5, "A")], [])
    assert matches == [BoxMatch("A", 0.0)]
    assert iou_accuracy(matches, ["A"], [0.1])["0.1"] == {"A": 0.0, "mean": 0.0}
    assert len(IOU_THRESHOLDS) == 7


def test_auc_with_a_missing_class():
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    s = np.array([[0.9, 0.2, 0.5], [0.1, 0.3, 0.5], [0.6, 0.4, 0.5], [0.7, 0.5, 0.5]])
    auc = per_class_auc(y, s, ["pos", "no_positive", "no_negative"])
    # positives 0.9, 0.6 vs negatives 0.1, 0.7: 3 of 4 pairs ordered -> 0.75
    assert auc == {"pos": pytest.approx(0.75), "no_positive": None, "no_negative": None}
    assert mean_of(auc) == pytest.approx(0.75)
    assert mean_of({"a": None}) is None
    assert class_auc(np.array([]), np.array([])) is None
    with pytest.raises(ValueError):
        per_class_auc(y, s[:, :2], ["a", "b", "c"])


def test_auc_leaves_a_nan_target_out_of_its_class_only():
    y = np.array([[1, 1], [0, 0], [1, np.nan], [0, 1]], dtype=float)  # image 2 uncertain on class b: left out of b
    s = np.array([[0.9, 0.2], [0.1, 0.3], [0.2, 0.9], [0.7, 0.5]])
    auc = per_class_auc(y, s, ["a", "b"])
    assert auc["a"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))  # every image
    assert auc["b"] == pytest.approx(roc_auc_score([1, 0, 1], [0.2, 0.3, 0.5])) == 0.5
    assert class_auc(np.array([1.0, np.nan]), np.array([0.5, 0.5])) is None  # one image left: undefined


def test_youden_thresholds():
    y = np.array([0, 0, 1, 1])
    assert youden_threshold(y, np.array([0.1, 0.3, 0.6, 0.8])) == pytest.approx(0.6)
    assert youden_threshold(np.zeros(4), np.array([0.1, 0.3, 0.6, 0.8])) == 0.5
    th = choose_thresholds(np.stack([y, np.zeros(4)], 1), np.stack([[0.1, 0.3, 0.6, 0.8]] * 2, 1), ["a", "b"])
    assert th == {"a": pytest.approx(0.6), "b": 0.5}
    assert all(0.0 <= v <= 1.0 for v in th.values())


def test_pairwise_iou_and_giou():
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.2, 0.2]])
    b = torch.tensor([[0.0, 0.0, 0.5, 0.25], [0.4, 0.4, 0.6, 0.6]])
    assert pairwise_iou(a, b).tolist() == pytest.approx([0.5, 0.0], abs=1e-5)
    g = pairwise_iou(a, b, "giou")
    # disjoint boxes: hull 0.6 x 0.6 = 0.36, union 0.08 -> GIoU = 0 - (0.36 - 0.08) / 0.36
    assert float(g[1]) == pytest.approx(-(0.36 - 0.08) / 0.36, abs=1e-5)


def test_cln_loss_parts():
    logits = torch.zeros(2, 3)
    targets = torch.tensor([[1.0, 0, 0], [0, 0, 0]])
    pw = positive_weights(targets.numpy())
    assert pw.tolist() == pytest.approx([1.0, 1.0, 1.0])  # 1 positive, 1 negative; no positive -> 1
    pred = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.1, 0.1, 0.2, 0.2]]] * 2)  # (N=2, K=2, 4)
    gt = torch.zeros(2, 4, 4)
    gc = torch.full((2, 4), -1, dtype=torch.long)
    gt[0, 0] = torch.tensor([0.0, 0.0, 0.5, 0.25])
    gc[0, 0] = 0  # box class 0 -> predicted box 0: IoU 0.5
    parts = cln_loss(logits, pred, targets, gt, gc, pw, lam=0.4)
    assert parts.n_boxes == 1
    assert parts.classification == pytest.approx(math.log(2), abs=1e-5)
    assert parts.box == pytest.approx(0.5, abs=1e-5)
    assert float(parts.total) == pytest.approx(0.4 * math.log(2) + 0.6 * 0.5, abs=1e-5)
    stage1 = cln_loss(logits, pred, targets, gt, gc, pw, lam=0.4, use_boxes=False)
    assert float(stage1.total) == pytest.approx(math.log(2), abs=1e-5)
    none = cln_loss(logits, pred, targets, gt, torch.full((2, 4), -1), pw, lam=0.4)
    assert none.n_boxes == 0 and float(none.total) == pytest.approx(0.4 * math.log(2), abs=1e-5)
