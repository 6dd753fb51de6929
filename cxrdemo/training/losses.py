"""CLN's training loss: ``lambda * classification + (1 - lambda) * (1 - IoU)``.

- classification: binary cross-entropy over the multi-label head, each class's positives weighted by
  ``negatives / positives`` on the training set (the thesis seed's weighting), averaged over images and classes,
  on every image;
- localisation: ``1 - IoU`` (or ``1 - GIoU``) between each ground-truth box and the box the model predicts FOR THAT
  BOX'S CLASS, averaged over the ground-truth boxes in the batch (images without boxes add nothing); when a batch
  holds no box the term is 0.

Knowledge distillation (``train --teacher-predictions``): on an image that has a teacher row, the classification
term becomes ``A * BCE(student, teacher probabilities) + (1 - A) * weighted BCE(student, labels)`` (``A`` =
``--distill-weight``); an image without a teacher row keeps the labels alone. The teacher gives probabilities, not
logits, so a temperature ``T`` softens both sides the same way (Hinton et al. 2015): teacher logit
``log(p / (1 - p))`` and student logit are divided by ``T``, and the distillation term is multiplied by ``T^2`` so
its gradient keeps its size when ``T`` changes. ``T = 1`` (the default) is plain BCE against the probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

BOX_LOSSES = ("iou", "giou")


def positive_weights(targets: np.ndarray, max_weight: float = 100.0) -> torch.Tensor:
    """Per-class ``negatives / positives`` from ``(N, C)`` multi-hot training targets (classes with no positive: 1)."""
    targets = np.asarray(targets, dtype=np.float64)
    pos = targets.sum(0)
    neg = targets.shape[0] - pos
    w = np.where(pos > 0, neg / np.maximum(pos, 1.0), 1.0)
    return torch.tensor(np.clip(w, 1e-3, max_weight), dtype=torch.float32)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Mean weighted binary cross-entropy (positives of class c weighted by ``pos_weight[c]``)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=pos_weight.to(logits.device))


def distillation_bce(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """Per-image ``T^2 * mean_c BCE(sigmoid(z / T), sigmoid(logit(p) / T))`` -> ``(N,)`` (see module doc)."""
    t = float(temperature)
    if not t > 0:
        raise ValueError(f"distillation temperature must be > 0, not {temperature}")
    p = teacher_probs.float().to(logits.device).clamp(eps, 1.0 - eps)
    if t != 1.0:
        p = torch.sigmoid(torch.log(p / (1.0 - p)) / t)
    per = F.binary_cross_entropy_with_logits(logits.float() / t, p, reduction="none").mean(1)
    return per * (t * t)


def classification_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pos_weight: torch.Tensor,
    teacher_probs: torch.Tensor | None = None,
    has_teacher: torch.Tensor | None = None,
    distill_weight: float = 0.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The classification term: weighted BCE, blended per image with distillation where a teacher row exists.

    Without a teacher (or ``distill_weight == 0``) this is exactly :func:`weighted_bce`.
    """
    if teacher_probs is None or has_teacher is None or distill_weight <= 0.0:
        return weighted_bce(logits, targets, pos_weight)
    label_term = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float().to(logits.device), pos_weight=pos_weight.to(logits.device), reduction="none"
    ).mean(1)
    kd = distillation_bce(logits, teacher_probs, temperature)
    a = has_teacher.to(logits.device).float() * float(distill_weight)
    return (a * kd + (1.0 - a) * label_term).mean()


def pairwise_iou(a: torch.Tensor, b: torch.Tensor, kind: str = "iou", eps: float = 1e-7) -> torch.Tensor:
    """Differentiable IoU (or generalised IoU) of matching ``(M, 4)`` xyxy boxes -> ``(M,)``."""
    ix1 = torch.maximum(a[:, 0], b[:, 0])
    iy1 = torch.maximum(a[:, 1], b[:, 1])
    ix2 = torch.minimum(a[:, 2], b[:, 2])
    iy2 = torch.minimum(a[:, 3], b[:, 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter
    iou = inter / (union + eps)
    if kind == "iou":
        return iou
    if kind != "giou":
        raise ValueError(f"box loss must be one of {BOX_LOSSES}, not {kind!r}")
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    hull = cw * ch + eps
    return iou - (hull - union) / hull


def gather_boxes(pred: torch.Tensor, gt_boxes: torch.Tensor, gt_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair each valid ground-truth box with the predicted box of its class.

    Args:
        pred: ``(N, K, 4)`` predicted boxes (K box classes, or 1 for single-box models).
        gt_boxes: ``(N, M, 4)`` ground truth, padded.
        gt_class: ``(N, M)`` box-class index, -1 for padding.

    Returns:
        ``(predicted (B, 4), truth (B, 4))`` for the B valid ground-truth boxes.
    """
    valid = gt_class >= 0
    img = torch.nonzero(valid, as_tuple=True)[0]
    cls = gt_class[valid]
    if pred.shape[1] == 1:
        cls = torch.zeros_like(cls)
    return pred[img, cls], gt_boxes[valid]


@dataclass
class LossParts:
    """The total loss and its parts (floats for logging)."""

    total: torch.Tensor
    classification: float
    box: float
    n_boxes: int


def cln_loss(
    logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    targets: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_class: torch.Tensor,
    pos_weight: torch.Tensor,
    lam: float,
    use_boxes: bool = True,
    box_loss: str = "iou",
    teacher_probs: torch.Tensor | None = None,
    has_teacher: torch.Tensor | None = None,
    distill_weight: float = 0.0,
    temperature: float = 1.0,
    connect_boxes: bool = False,
) -> LossParts:
    """``lam * classification + (1 - lam) * (1 - IoU)``; with ``use_boxes=False`` (stage 1) the classification loss only.

    The classification term is :func:`classification_loss` (weighted BCE, with distillation when a teacher is given).
    ``connect_boxes``: when the batch holds no box, still tie the box output into the loss with weight 0, so every
    box-head parameter gets a (zero) gradient. DistributedDataParallel needs it: one process's batch may hold a box
    while another's does not, and all must all-reduce the same gradients.
    """
    cls = classification_loss(logits, targets, pos_weight, teacher_probs, has_teacher, distill_weight, temperature)
    if not use_boxes:
        return LossParts(cls, float(cls.detach()), 0.0, 0)
    p, t = gather_boxes(pred_boxes.float(), gt_boxes.to(pred_boxes.device), gt_class.to(pred_boxes.device))
    n = int(p.shape[0])
    if n:
        box = (1.0 - pairwise_iou(p, t, box_loss)).mean()
    else:
        box = pred_boxes.float().sum() * 0.0 if connect_boxes else cls.new_zeros(())
    total = lam * cls + (1.0 - lam) * box
    return LossParts(total, float(cls.detach()), float(box.detach()), n)
