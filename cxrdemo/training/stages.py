"""The stages of a training run: each stage's optimiser and schedule, its epochs, what ends an epoch.

:func:`run_stages` runs the :class:`~cxrdemo.training.loop.StagePlan` list of a :class:`TrainRun` (stage 1
``classify``, stage 2 ``joint``), resuming from a checkpoint when the run holds one. Per epoch: one pass over the
training loader (:func:`train_one_epoch`), then :func:`end_epoch` validates (when the run has a validation split),
steps the schedule, keeps the best (or last) weights in ``best.safetensors``, logs and checkpoints.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import load_checkpoint, model_state, save_checkpoint
from ..models.config import ModelConfig
from .losses import cln_loss
from ..models.cln import MultiTaskNet
from .loop import (
    StagePlan, ValResult, WeightEma, autocast_for, batch_inputs, improved, jsonable_args, make_optimizer, make_scheduler,
    monitor_value, record_val_probs, step_scheduler, validate,
)
from .prepare import set_trainable, train_mode


@dataclass
class TrainRun:
    """Everything the stages of one training run share (built by :mod:`cxrdemo.training.train`; one per run)."""

    args: argparse.Namespace
    ctx: Any  # cxrdemo.distributed.DistContext
    out: Path
    started: float
    config: ModelConfig
    model: MultiTaskNet
    train_ds: Any
    train_loader: Any
    sampler: Any
    val_loader: Any  # None on ranks other than 0, and in a refit
    val_names: list[str]
    pos_weight: torch.Tensor
    teacher_probs: torch.Tensor | None
    teacher_mask: torch.Tensor | None
    commands: list[str]
    say: Callable[[str], None]
    resume: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    stage_epochs: dict[str, int] = field(default_factory=dict)
    best_epoch: dict[str, int | None] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def main(self) -> bool:
        return self.ctx.main

    @property
    def validating(self) -> bool:
        """Whether this run has a validation split (a ``--refit`` has none); the same on every rank."""
        return bool(self.val_names)

    @property
    def best_path(self) -> Path:
        return self.out / "best.safetensors"

    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoint"


@dataclass
class StageState:
    """The moving parts of one stage: optimiser, schedule, weight average, best monitor value so far."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: WeightEma | None
    best: float | None = None
    bad: int = 0
    first_epoch: int = 1


def run_stages(run: TrainRun, plans: list[StagePlan], start_stage: int = 0, start_epoch: int = 1) -> None:
    """Run ``plans[start_stage:]`` (the first from ``start_epoch`` when resuming); ``best.safetensors`` ends as the
    weights to keep."""
    scaler = torch.amp.GradScaler("cuda", enabled=run.device.type == "cuda" and not torch.cuda.is_bf16_supported())
    for si in range(start_stage, len(plans)):
        plan = plans[si]
        state = start_stage_state(run, si, plan, start_epoch if si == start_stage else 1)
        for epoch in range(state.first_epoch, plan.epochs + 1):
            budget = run.args.max_minutes * 60 if run.args.max_minutes else None
            over = bool(budget) and time.time() - run.started > budget * (0.85 if plan.name == "classify" else 1.0)
            if run.ctx.agree(over):  # rank 0's clock decides for all
                run.say(f"time budget reached: {plan.name} stops before epoch {epoch}")
                break
            warm = plan.name == "classify" and epoch <= run.args.warmup_epochs
            loss = train_one_epoch(run, plan, si, epoch, state, scaler, warm)
            end_epoch(run, si, plan, epoch, state, loss, warm)
            if state.bad >= run.args.patience:
                run.say(f"early stop: {plan.name} did not improve for {state.bad} epochs")
                break
        run.resume = None
        run.stage_epochs.setdefault(plan.name, 0)
        if run.main and plan.name == "classify" and not run.best_path.is_file():  # no epoch ran or none had an AUC
            from safetensors.torch import save_file

            save_file(model_state(run.model), str(run.best_path))


def start_stage_state(run: TrainRun, si: int, plan: StagePlan, resume_epoch: int) -> StageState:
    """The stage's optimiser, schedule and EMA; restored from the checkpoint when resuming this stage, else the
    previous stage's kept weights are loaded and (stage 2) its "epoch 0" is the stage-1 model with prior boxes."""
    args, model = run.args, run.model
    optimizer = make_optimizer(model, plan.name, args)
    state = StageState(optimizer, make_scheduler(optimizer, plan, args), None)
    use_ema = args.ema > 0 and plan.name == "classify"
    state.ema = WeightEma(model, args.ema) if use_ema else None
    if run.resume is not None:
        load_checkpoint(run.ckpt_dir, model, optimizer)  # every rank reads it (multi-node: --out on a shared disk)
        state.scheduler.load_state_dict(run.resume["scheduler"])
        state.best, state.bad, state.first_epoch = run.resume["best"], int(run.resume["bad"]), resume_epoch
        if use_ema and (run.ckpt_dir / "ema.safetensors").is_file():
            from safetensors.torch import load_file

            state.ema = WeightEma(model, args.ema, int(run.resume.get("ema_updates", 0)))
            state.ema.model.load_state_dict(load_file(str(run.ckpt_dir / "ema.safetensors")))
        return state
    if si > 0 and run.ctx.agree(run.main and run.best_path.is_file()):
        if run.main:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(run.best_path)))
        run.ctx.broadcast_state(model)
    if plan.use_boxes and run.validating:  # epoch 0: the stage-1 model with prior boxes
        val = validate(model, run.val_loader, run.pos_weight, args.lam, True, args.box_loss, run.device) if run.main else None
        state.best = run.ctx.broadcast_floats([monitor_value(plan.monitor, val) if run.main else None])[0]
        run.best_epoch[plan.name] = 0
        if run.main:
            log_epoch(run, plan.name, 0, None, val, optimizer)
    return state


def train_one_epoch(run: TrainRun, plan: StagePlan, si: int, epoch: int, state: StageState, scaler, warm: bool) -> float:
    """One pass over the training images; returns the mean training loss over every rank's images."""
    from tqdm.auto import tqdm

    args, model, device = run.args, run.model, run.device
    if plan.name == "classify":
        frozen = set_trainable(model, None if warm else args.freeze, True, False)
    else:
        frozen = set_trainable(model, args.freeze if args.stage2_backbone == "train" else None, True, True)
    train_mode(model, frozen)
    net = run.ctx.wrap(model)  # DDP over the parameters trainable in this epoch
    run.train_ds.set_epoch(epoch + 1000 * si)
    if run.sampler is not None:
        run.sampler.set_epoch(epoch + 1000 * si)  # a new shuffle every epoch, the same on every rank
    else:
        run.train_loader.generator.manual_seed(args.seed * 100_003 + epoch + 1000 * si)  # same order after --resume
    total, seen = 0.0, 0
    desc = f"{plan.name} {epoch}/{plan.epochs}{' (head warm-up)' if warm else ''}"
    bar = tqdm(run.train_loader, desc=desc, unit="batch", leave=False, disable=args.quiet or not run.main)
    for batch in bar:
        x = batch_inputs(batch, run.config, device)
        with autocast_for(device):
            outp = net(x)
        t_probs = t_mask = None
        if run.teacher_probs is not None:
            idx = batch["index"]
            t_probs, t_mask = run.teacher_probs[idx].to(device), run.teacher_mask[idx].to(device)
        parts = cln_loss(
            outp.logits, outp.boxes, batch["target"].to(device, non_blocking=True), batch["boxes"], batch["box_class"],
            run.pos_weight, args.lam, use_boxes=plan.use_boxes, box_loss=args.box_loss,
            teacher_probs=t_probs, has_teacher=t_mask, distill_weight=args.distill_weight,
            temperature=args.distill_temperature, connect_boxes=run.ctx.enabled,
        )
        state.optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts.total).backward()
        scaler.step(state.optimizer)
        scaler.update()
        if state.ema is not None:
            state.ema.update(model)
        seen += len(x)
        total += float(parts.total.detach()) * len(x)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    if net is not model:
        # Drop this epoch's DDP wrapper now, with the last batch's outputs that reference it: a wrapper left
        # alive keeps its gradient hooks on the parameters and would all-reduce again in the next epoch.
        outp = parts = x = batch = None  # noqa: F841
        del net
        gc.collect()
    total_loss, total_seen = run.ctx.sum_floats([total, float(seen)])
    return total_loss / max(total_seen, 1.0)


def end_epoch(run: TrainRun, si: int, plan: StagePlan, epoch: int, state: StageState, loss: float, warm: bool) -> None:
    """Validate (if the run validates), step the schedule, keep the best/last weights, log and checkpoint."""
    args, ctx = run.args, run.ctx
    judged = state.ema.model if state.ema is not None else run.model
    val = None
    if run.validating and run.main:
        val = validate(judged, run.val_loader, run.pos_weight, args.lam, plan.use_boxes, args.box_loss, run.device)
    value = ctx.broadcast_floats([monitor_value(plan.monitor, val) if val is not None else None])[0]
    if not warm:
        step_scheduler(state.scheduler, value)
    if val is not None and plan.name == "classify":
        record_val_probs(run.out / "val_probs.npz", run.val_names, epoch, val.probs)
    if args.keep == "last" or improved(plan.monitor, value, state.best):
        state.best, state.bad = value, 0
        run.best_epoch[plan.name] = epoch
        if run.main:
            from safetensors.torch import save_file

            save_file(model_state(judged), str(run.best_path))
    elif not warm:
        state.bad += 1
    run.stage_epochs[plan.name] = epoch
    if run.main:
        log_epoch(run, plan.name, epoch, loss, val, state.optimizer)
        save_checkpoint(
            run.ckpt_dir,
            run.model,
            state.optimizer,
            {
                "stage": si, "epoch": epoch, "best": state.best, "bad": state.bad, "history": run.history,
                "stage_epochs": run.stage_epochs, "best_epoch": run.best_epoch, "scheduler": state.scheduler.state_dict(),
                "elapsed": time.time() - run.started, "args": jsonable_args(args), "commands": run.commands,
                "ema_updates": state.ema.updates if state.ema is not None else 0, "world_size": ctx.world,
            },
        )
        if state.ema is not None:
            from safetensors.torch import save_file

            save_file(model_state(state.ema.model), str(run.ckpt_dir / "ema.safetensors"))
    ctx.barrier()  # the checkpoint is complete before any rank goes on


def log_epoch(run: TrainRun, stage: str, epoch: int, train_loss: float | None, val: ValResult | None, optimizer) -> None:
    """Append one epoch's record to ``log.jsonl`` and ``run.history``; print its line."""
    from tqdm.auto import tqdm

    lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
    elapsed = time.time() - run.started
    rec = {
        "stage": stage, "epoch": epoch, "train_loss": train_loss,
        "val_loss": val.loss if val else None, "val_cls_loss": val.cls_loss if val else None,
        "val_box_loss": val.box_loss if val else None, "val_mean_auc": val.mean_auc if val else None,
        "val_mean_iou": val.mean_iou if val else None, "lr": lrs, "elapsed_s": round(elapsed, 1),
    }
    run.history.append(rec)
    with (run.out / "log.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    tl = "-" if train_loss is None else f"{train_loss:.4f}"
    if val is None:
        msg = f"{stage} epoch {epoch}: train loss {tl} (no validation split), {elapsed / 60:.1f} min"
    else:
        auc = "n/a" if val.mean_auc is None else f"{val.mean_auc:.4f}"
        iou = "n/a" if val.mean_iou is None else f"{val.mean_iou:.3f}"
        msg = f"{stage} epoch {epoch}: train loss {tl}, val loss {val.loss:.4f}, val mean AUC {auc}, val box IoU {iou}, {elapsed / 60:.1f} min"
    if run.args.quiet:
        print(msg, file=sys.stderr)
    else:
        tqdm.write(msg)
