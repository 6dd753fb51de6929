"""Training set-up: the per-class prior boxes, the box head started at them, which backbone stages train."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..models.backbones import backbone_stages
from ..datasets.samples import Sample
from ..models.cln import MultiTaskNet

#: Used when no training image has a box at all: a central box over both lungs.
FALLBACK_PRIOR = [0.2, 0.2, 0.8, 0.8]


def prior_boxes(samples: Sequence[Sample], box_classes: Sequence[str]) -> tuple[dict[str, list[float]], list[str]]:
    """Per-class mean training box (normalised xyxy); classes without a box get the mean over all boxes.

    Returns the boxes and the classes that fell back.
    """
    per: dict[str, list[tuple[float, float, float, float]]] = {c: [] for c in box_classes}
    for s in samples:
        for b in s.boxes:
            if b.label in per:
                per[b.label].append(b.xyxy)
    every = [xy for v in per.values() for xy in v]
    overall = np.mean(every, axis=0).tolist() if every else list(FALLBACK_PRIOR)
    out, fallback = {}, []
    for c in box_classes:
        box = np.mean(per[c], axis=0).tolist() if per[c] else overall
        if not per[c]:
            fallback.append(c)
        x1, y1, x2, y2 = (float(np.clip(v, 0.0, 1.0)) for v in box)
        if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
            x1, y1, x2, y2 = FALLBACK_PRIOR
        out[c] = [round(x1, 6), round(y1, 6), round(x2, 6), round(y2, 6)]
    return out, fallback


def init_box_head_at_priors(model: MultiTaskNet, priors: dict[str, list[float]]) -> None:
    """Make the box head output the prior boxes: last layer's weights scaled down, bias = inverse box parameters."""
    last: nn.Linear = model.box_head.mlp[-1]  # type: ignore[assignment]
    labels = model.config.box_classes if model.config.box_mode == "per_class" else ["*"]
    mean_prior = np.mean(list(priors.values()), axis=0) if priors else np.array(FALLBACK_PRIOR)
    bias = []
    for lab in labels:
        x1, y1, x2, y2 = (float(v) for v in priors.get(lab, mean_prior))
        eps = 1e-4
        logit = lambda p: math.log(min(max(p, eps), 1 - eps) / (1 - min(max(p, eps), 1 - eps)))  # noqa: E731
        bias += [logit(x1), logit(y1), logit((x2 - x1) / max(1 - x1, eps)), logit((y2 - y1) / max(1 - y1, eps))]
    with torch.no_grad():
        last.weight.mul_(0.01)
        last.bias.copy_(torch.tensor(bias, dtype=last.bias.dtype))


def set_trainable(model: MultiTaskNet, backbone_from: int | None, class_head: bool, box_head: bool) -> list[nn.Module]:
    """Freeze/unfreeze parts; backbone stages ``>= backbone_from`` train (``None``: whole backbone frozen).

    Returns the frozen backbone stages (to be kept in eval mode: their BatchNorm statistics stay fixed).
    """
    stages = backbone_stages(model.backbone)
    frozen = []
    for i, stage in enumerate(stages):
        on = backbone_from is not None and i >= backbone_from
        for p in stage.parameters():
            p.requires_grad_(on)
        if not on:
            frozen.append(stage)
    for p in model.class_head.parameters():
        p.requires_grad_(class_head)
    for p in model.box_head.parameters():
        p.requires_grad_(box_head)
    return frozen


def train_mode(model: MultiTaskNet, frozen: Sequence[nn.Module]) -> None:
    """Model in train mode, frozen stages in eval mode."""
    model.train()
    for m in frozen:
        m.eval()


