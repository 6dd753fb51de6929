"""The parts of one training epoch: weight EMA, stage plans, validation, optimisers, the monitor."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.config import ModelConfig
from .losses import cln_loss
from ..metrics import mean_of, per_class_auc
from ..models.cln import MultiTaskNet
from ..preprocess import normalise


class WeightEma:
    """Exponential moving average of a model's weights and buffers (validated and kept instead of the raw weights).

    ``decay`` is warmed up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages are not
    dominated by the starting weights.
    """

    def __init__(self, model: nn.Module, decay: float, updates: int = 0) -> None:
        import copy

        self.decay = float(decay)
        self.updates = int(updates)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the average."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for avg, cur in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur.detach(), 1.0 - d)
            else:
                avg.copy_(cur)


@dataclass
class StagePlan:
    """One training stage."""

    name: str
    epochs: int
    monitor: str  # "auc" (maximise) or "loss" (minimise)
    use_boxes: bool


@dataclass
class ValResult:
    """Validation metrics of one epoch."""

    loss: float
    cls_loss: float
    box_loss: float
    mean_auc: float | None
    auc: dict[str, float | None]
    mean_iou: float | None
    probs: np.ndarray


def batch_inputs(batch: dict[str, torch.Tensor], config: ModelConfig, device: torch.device) -> torch.Tensor:
    """Normalised model input; on CUDA the uint8 batch travels (pinned, asynchronously) and is normalised on the GPU,
    in channels_last layout (faster convolutions with AMP)."""
    if device.type == "cuda":
        x = batch["image"].to(device, non_blocking=True).unsqueeze(1).float().div_(255.0)
        mean = torch.tensor(config.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.tensor(config.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        x = (x.expand(-1, config.channels, -1, -1) - mean) / std
        return x.contiguous(memory_format=torch.channels_last)
    return normalise(batch["image"].numpy(), config).to(device, non_blocking=True)


def jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}


def autocast_for(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def validate(model: MultiTaskNet, loader, pos_weight: torch.Tensor, lam: float, use_boxes: bool, box_loss: str, device: torch.device) -> ValResult:
    """Forward the validation loader (no augmentation) and compute loss, AUCs and mean box IoU."""
    from .losses import gather_boxes, pairwise_iou

    model.eval()
    logits, boxes, targets, gtb, gtc = [], [], [], [], []
    with torch.no_grad(), autocast_for(device):
        for batch in loader:
            out = model(batch_inputs(batch, model.config, device))
            logits.append(out.logits.float().cpu())
            boxes.append(out.boxes.float().cpu())
            targets.append(batch["target"])
            gtb.append(batch["boxes"])
            gtc.append(batch["box_class"])
    lg, bx, tg, gb, gc = (torch.cat(v) for v in (logits, boxes, targets, gtb, gtc))
    parts = cln_loss(lg, bx, tg, gb, gc, pos_weight.cpu(), lam, use_boxes=True, box_loss=box_loss)
    p, t = gather_boxes(bx, gb, gc)
    mean_iou = float(pairwise_iou(p, t).mean()) if len(p) else None
    loss = float(parts.total) if use_boxes else parts.classification
    probs = model.probabilities(lg).numpy()
    auc = per_class_auc(tg.numpy(), probs, model.config.classes)
    return ValResult(loss, parts.classification, parts.box, mean_of(auc), auc, mean_iou, probs)


def make_optimizer(model: MultiTaskNet, stage: str, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW with per-part learning rates; every part of the stage is in it (frozen parameters just get no grad)."""
    backbone = [p for p in model.backbone.parameters()]
    if stage == "classify":
        groups = [
            {"params": list(model.class_head.parameters()), "lr": args.lr, "name": "class_head"},
            {"params": backbone, "lr": args.backbone_lr, "name": "backbone"},
        ]
    else:
        groups = [
            {"params": list(model.box_head.parameters()), "lr": args.lr, "name": "box_head"},
            {"params": list(model.class_head.parameters()), "lr": args.lr * 0.1, "name": "class_head"},
        ]
        if args.stage2_backbone == "train":
            groups.append({"params": backbone, "lr": args.backbone_lr * 0.1, "name": "backbone"})
    return torch.optim.AdamW(groups, weight_decay=args.weight_decay)


def improved(monitor: str, value: float | None, best: float | None) -> bool:
    if value is None:
        return False
    if best is None:
        return True
    return value > best + 1e-4 if monitor == "auc" else value < best - 1e-4


def monitor_value(monitor: str, val: ValResult) -> float | None:
    return val.mean_auc if monitor == "auc" else val.loss




def make_scheduler(optimizer: torch.optim.Optimizer, plan: StagePlan, args: argparse.Namespace):
    """The stage's learning-rate schedule: ``plateau`` (halve after ``--plateau-patience`` epochs without a better
    validation monitor) or ``cosine`` (decay to 0 over the stage's epochs after the head warm-up; stage 1 only:
    the joint stage keeps the plateau rule on its loss)."""
    warmup = args.warmup_epochs if plan.name == "classify" else 0
    if getattr(args, "schedule", "plateau") == "cosine" and plan.name == "classify":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, plan.epochs - warmup), eta_min=0.0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max" if plan.monitor == "auc" else "min", factor=0.5, patience=args.plateau_patience, min_lr=1e-6
    )


def step_scheduler(scheduler, value: float | None) -> None:
    """Advance ``scheduler`` one epoch (a plateau rule reads ``value``; ``None`` counts as no improvement)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(value if value is not None else 0.0)
    else:
        scheduler.step()


def record_val_probs(path: Path, names: list[str], epoch: int, probs: np.ndarray) -> None:
    """Add one epoch's validation probabilities to ``path`` (``.npz``: ``names`` and ``epoch_<n>`` arrays).

    These are the out-of-fold predictions of a ``--folds`` run, gathered by ``cxrdemo cv``. Written atomically.
    """
    import os

    arrays: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path, allow_pickle=False) as old:
            arrays = {k: old[k] for k in old.files}
        if list(arrays.get("names", [])) != list(names):
            arrays = {}
    arrays["names"] = np.array(names)
    arrays[f"epoch_{int(epoch)}"] = np.asarray(probs, dtype=np.float32)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
