"""``python -m cxrdemo train``: train a multi-task model in CLN's protocol and write a Hub-ready folder.

Protocol (CLN section 2.3, adapted to multi-label NIH data):
1. stage ``classify``: backbone + classification head on every labelled training image, weighted BCE
   (positives weighted negatives/positives). The first ``--warmup-epochs`` train the head alone on the frozen
   backbone (a linear-probe warm start, so a random head does not wreck the pre-trained features), then the
   backbone's stages after the first ``--freeze`` ones train at ``--backbone-lr``.
2. stage ``joint``: both heads with ``lambda * wBCE + (1 - lambda) * (1 - IoU)`` (IoU of the box predicted for each
   ground-truth box's class). The box head starts AT the prior boxes (its last layer's bias is set so that it outputs
   the per-class mean training box), so it can only learn to beat that baseline. By default the backbone stays frozen
   in this stage (``--stage2-backbone frozen``): with a handful of boxed images, letting the shared features chase
   the IoU loss only fits noise (CLN had 704 boxed training images).
Each stage: AdamW, ReduceLROnPlateau on its validation monitor (stage 1: mean AUC; stage 2: the CLN loss), early
stopping after ``--patience`` epochs without improvement, best epoch kept. Stage 2's "epoch 0" is the stage-1 model
with prior boxes, so stage 2 can never end worse on its monitor than it started.

Outputs in ``--out``: ``model/`` (Hub-ready: config.json with thresholds chosen on validation by Youden's J and
prior boxes, model.safetensors, its sha256, README.md card with data, command, seed, time and the validation
evaluation), ``eval/`` (``evaluate`` on the validation split), ``checkpoint/`` (resumable with ``--resume``),
``best.safetensors``, ``log.jsonl``, ``split.json`` and ``val_images.txt``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbones import get_spec
from .checkpoint import load_checkpoint, model_state, read_state, save_checkpoint
from .config import ModelConfig
from .nih import NIH_BOX_CLASSES, NIH_CLASSES
from .data import Augment, CxrDataset, ImageCache, fold_split, label_counts, load_samples, make_loader, split_patients
from .errors import InputError
from .losses import BOX_LOSSES, cln_loss, positive_weights
from .train_card import training_card_body
from .train_loop import StagePlan, ValResult, WeightEma, autocast_for, batch_inputs, improved, jsonable_args, make_optimizer, make_scheduler, monitor_value, record_val_probs, step_scheduler, validate
from .train_setup import init_box_head_at_priors, prior_boxes, set_trainable, train_mode
from .metrics import choose_thresholds
from .model import MultiTaskNet



def default_cache_dir() -> Path:
    """``$CXRDEMO_CACHE`` or ``~/.cache/cxrdemo/images`` (decoded pixels: never inside the repository)."""
    env = os.environ.get("CXRDEMO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cxrdemo" / "images"


# ------------------------------------------------------------------------------------------------------- run
def _setup_threads(threads: int | None) -> int:
    n = threads or os.cpu_count() or 1
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(args: argparse.Namespace) -> Path:
    """Run a training described by parsed ``args``; returns the Hub-ready model folder."""
    from tqdm.auto import tqdm

    from .distributed import setup as setup_distributed
    from .evaluate import evaluate_samples, write_report
    from .modelcard import render_card
    from .provenance import write_splits
    from .report import report_markdown
    from .weights import save_model

    started = time.time()
    if args.box_loss not in BOX_LOSSES:
        raise InputError(f"--box-loss must be one of {BOX_LOSSES}")
    if not 0.0 <= args.lam <= 1.0:
        raise InputError("--lambda must lie in [0, 1]")
    if not 0.0 <= args.distill_weight <= 1.0:
        raise InputError("--distill-weight must lie in [0, 1]")
    if not args.distill_temperature > 0.0:
        raise InputError("--distill-temperature must be > 0")
    teacher = None
    if args.teacher_predictions:
        from .teacher import read_teacher_predictions

        teacher = read_teacher_predictions(args.teacher_predictions, NIH_CLASSES)
    ctx = setup_distributed(args.device)
    try:
        return _train(args, ctx, teacher, started, tqdm, evaluate_samples, write_report, render_card, write_splits, report_markdown, save_model)
    finally:
        ctx.close()


def _train(args, ctx, teacher, started, tqdm, evaluate_samples, write_report, render_card, write_splits, report_markdown, save_model) -> Path:
    device = ctx.device
    main = ctx.main
    say = (lambda msg: print(msg, file=sys.stderr)) if main else (lambda msg: None)  # noqa: E731
    # under torchrun on CPU, the cores are shared by the processes of this machine
    threads = _setup_threads(args.threads or (max(1, (os.cpu_count() or 1) // ctx.local_world) if ctx.enabled else None))
    _seed_everything(args.seed)
    cuda = device.type == "cuda"
    workers = args.workers if args.workers is not None else (min(8, max(1, (os.cpu_count() or 1) // ctx.local_world)) if cuda else 0)
    out = Path(args.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.jsonl"

    # ---- data
    found = load_samples(args.images, args.labels, args.boxes, NIH_CLASSES)
    samples = found.samples[: args.limit] if args.limit else found.samples
    split_seed = args.seed if args.split_seed is None else args.split_seed
    if args.folds:
        if args.fold is None:
            raise InputError("--folds K needs --fold I (0..K-1): the fold held out for validation")
        train_set, val_set = fold_split(samples, args.folds, args.fold, split_seed)
    else:
        train_set, val_set = split_patients(samples, args.val_fraction, split_seed)
    if main:
        (out / "val_images.txt").write_text("".join(s.name + "\n" for s in val_set), encoding="utf-8")
        (out / "split.json").write_text(
            json.dumps({"seed": split_seed, "train": [s.name for s in train_set], "val": [s.name for s in val_set]}, indent=0) + "\n",
            encoding="utf-8",
        )
    if not any(s.boxes for s in val_set):
        say(
            "warning: the validation split holds no radiologist box: the box head cannot be validated (val box IoU "
            "will read n/a, and stage 2 is judged on the classification loss alone)"
        )
    priors, fallback = prior_boxes(train_set, NIH_BOX_CLASSES)
    spec = get_spec(args.backbone)
    pretrained_text = {
        "imagenet": f"ImageNet: {spec.imagenet_source}",
        "none": "none (random initialisation)",
    }.get(args.pretrained or "none", f"backbone state dict {Path(args.pretrained).name}")
    config = ModelConfig(
        architecture=args.backbone,
        input_size=args.input_size,
        dropout=args.dropout,
        prior_boxes=priors,
        pretrained=pretrained_text,
    )
    if args.init_seed is not None:  # the heads' random start from their own seed (shared by runs meant for a soup)
        _seed_everything(args.init_seed)
    model = MultiTaskNet(config, None if args.pretrained in (None, "", "none") else args.pretrained)
    init_box_head_at_priors(model, priors)
    if args.init_seed is not None:
        _seed_everything(args.seed)
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    ctx.broadcast_state(model)  # identical starting weights on every rank

    cache_folder = None if args.no_disk_cache else Path(args.cache_dir or default_cache_dir())
    if cache_folder is not None:
        say(f"note: decoded {args.input_size} px images are cached in {cache_folder} (--cache-dir to move it, --no-disk-cache to keep them in memory only)")
    # With worker processes and a disk cache, workers read the .npy files (the OS caches them) instead of each
    # holding a copy of every decoded image in memory (112k images x 224^2 bytes = 5.6 GB per copy).
    cache = ImageCache(args.input_size, cache_folder, memory=not (workers > 0 and cache_folder is not None))
    paths = [s.path for s in samples]
    # each rank decodes its share; then every rank finds the others' files in the disk cache
    cache.warm(paths[ctx.rank :: ctx.world], progress=lambda xs: tqdm(xs, desc="decode+resize (cached)", unit="img", leave=False, disable=args.quiet or not main))
    ctx.barrier()
    augment = None if args.no_augment else Augment()
    train_ds = CxrDataset(train_set, config.classes, config.box_classes, cache, augment, args.seed)
    val_ds = CxrDataset(val_set, config.classes, config.box_classes, cache, None, args.seed)
    pin = cuda
    sampler = None
    if ctx.enabled:
        from torch.utils.data import DataLoader, DistributedSampler

        sampler = DistributedSampler(train_ds, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=args.seed, drop_last=False)
        train_loader = DataLoader(
            train_ds, batch_size=args.batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
            persistent_workers=workers > 0, drop_last=False,
        )
    else:
        train_loader = make_loader(train_ds, args.batch_size, True, workers, args.seed, pin)
    val_loader = make_loader(val_ds, args.eval_batch_size, False, workers, args.seed, pin) if main else None
    pos_weight = positive_weights(np.stack([s.target(config.classes) for s in train_set])).to(device)
    teacher_probs = teacher_mask = None
    teacher_info = None
    if teacher is not None:
        tp, tm = teacher.targets_for([s.name for s in train_set])
        teacher_probs, teacher_mask = torch.from_numpy(tp), torch.from_numpy(tm)
        n_with = int(tm.sum())
        teacher_info = teacher.card_info(n_with, len(train_set), args.distill_weight, args.distill_temperature)
        teacher_info["val_images_with_teacher"] = int(teacher.targets_for([s.name for s in val_set])[1].sum())
        say(
            f"teacher: {n_with} of {len(train_set)} training images have teacher probabilities "
            f"({len(train_set) - n_with} use the labels alone); distill weight {args.distill_weight}, "
            f"temperature {args.distill_temperature}"
        )

    plans = [StagePlan("classify", args.epochs, "auc", False), StagePlan("joint", args.stage2_epochs, "loss", True)]
    best_path = out / "best.safetensors"
    ckpt_dir = out / "checkpoint"
    history: list[dict[str, Any]] = []
    stage_epochs: dict[str, int] = {}
    best_epoch: dict[str, int | None] = {}
    resume = read_state(ckpt_dir) if args.resume else None
    start_stage, start_epoch = 0, 1
    # Record the command line the user typed (the CLI passes it as ``args.argv``; ``args.command`` is just "train").
    typed = list(getattr(args, "argv", None) or sys.argv[1:])
    argv = typed if "train" in typed[:2] else ["train", *typed]
    launcher = ["python"]
    if ctx.enabled:
        nnodes = max(1, ctx.world // max(ctx.local_world, 1))
        launcher = ["torchrun", *([f"--nnodes {nnodes}"] if nnodes > 1 else []), f"--nproc_per_node {ctx.local_world}"]
    command = " ".join([*launcher, *(shlex.quote(a) for a in ["-m", "cxrdemo", *argv])])
    commands = [command]
    if resume is not None:
        previous = resume.get("commands") or [_command_text(resume.get("args", {}).get("command"))]
        commands = [c for c in previous if c] + [command]
        history = resume["history"]
        stage_epochs = resume["stage_epochs"]
        best_epoch = resume["best_epoch"]
        start_stage, start_epoch = int(resume["stage"]), int(resume["epoch"]) + 1
        started -= float(resume.get("elapsed", 0.0))
        say(f"resuming {plans[start_stage].name} at epoch {start_epoch} from {ckpt_dir}")
    budget = args.max_minutes * 60 if args.max_minutes else None
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())

    for si in range(start_stage, len(plans)):
        plan = plans[si]
        optimizer = make_optimizer(model, plan.name, args)
        scheduler = make_scheduler(optimizer, plan, args)
        best, bad, epoch0 = None, 0, 1
        ema = WeightEma(model, args.ema) if args.ema > 0 and plan.name == "classify" else None
        if resume is not None and si == start_stage:
            load_checkpoint(ckpt_dir, model, optimizer)  # every rank reads it (multi-node: --out on a shared disk)
            scheduler.load_state_dict(resume["scheduler"])
            best, bad, epoch0 = resume["best"], int(resume["bad"]), start_epoch
            if ema is not None and (ckpt_dir / "ema.safetensors").is_file():
                from safetensors.torch import load_file

                ema = WeightEma(model, args.ema, int(resume.get("ema_updates", 0)))
                ema.model.load_state_dict(load_file(str(ckpt_dir / "ema.safetensors")))
        else:
            if si > 0 and ctx.agree(main and best_path.is_file()):
                if main:
                    from safetensors.torch import load_file

                    model.load_state_dict(load_file(str(best_path)))
                ctx.broadcast_state(model)
            if plan.use_boxes:  # epoch 0: the stage-1 model with prior boxes
                val = validate(model, val_loader, pos_weight, args.lam, True, args.box_loss, device) if main else None
                best = ctx.broadcast_floats([monitor_value(plan.monitor, val) if main else None])[0]
                best_epoch[plan.name] = 0
                if main:
                    _log(log_path, history, plan.name, 0, None, val, optimizer, time.time() - started, quiet=args.quiet)
        for epoch in range(epoch0, plan.epochs + 1):
            over = bool(budget) and time.time() - started > budget * (0.85 if plan.name == "classify" else 1.0)
            if ctx.agree(over):  # rank 0's clock decides for all
                say(f"time budget reached: {plan.name} stops before epoch {epoch}")
                break
            warm = plan.name == "classify" and epoch <= args.warmup_epochs
            if plan.name == "classify":
                frozen = set_trainable(model, None if warm else args.freeze, True, False)
            else:
                frozen = set_trainable(model, args.freeze if args.stage2_backbone == "train" else None, True, True)
            train_mode(model, frozen)
            net = ctx.wrap(model)  # DDP over the parameters trainable in this epoch
            train_ds.set_epoch(epoch + 1000 * si)
            if sampler is not None:
                sampler.set_epoch(epoch + 1000 * si)  # a new shuffle every epoch, the same on every rank
            else:
                train_loader.generator.manual_seed(args.seed * 100_003 + epoch + 1000 * si)  # same order after --resume
            sums = np.zeros(3)
            seen = 0
            bar = tqdm(train_loader, desc=f"{plan.name} {epoch}/{plan.epochs}{' (head warm-up)' if warm else ''}", unit="batch", leave=False, disable=args.quiet or not main)
            for batch in bar:
                x = batch_inputs(batch, config, device)
                with autocast_for(device):
                    outp = net(x)
                t_probs = t_mask = None
                if teacher_probs is not None:
                    idx = batch["index"]
                    t_probs, t_mask = teacher_probs[idx].to(device), teacher_mask[idx].to(device)
                parts = cln_loss(
                    outp.logits, outp.boxes, batch["target"].to(device, non_blocking=True), batch["boxes"], batch["box_class"],
                    pos_weight, args.lam, use_boxes=plan.use_boxes, box_loss=args.box_loss,
                    teacher_probs=t_probs, has_teacher=t_mask, distill_weight=args.distill_weight,
                    temperature=args.distill_temperature, connect_boxes=ctx.enabled,
                )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(parts.total).backward()
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update(model)
                n = len(x)
                seen += n
                sums += np.array([float(parts.total.detach()) * n, parts.classification * n, parts.box * parts.n_boxes])
                bar.set_postfix(loss=f"{sums[0] / seen:.4f}")
            if net is not model:
                # Drop this epoch's DDP wrapper now, with the last batch's outputs that reference it: a wrapper left
                # alive keeps its gradient hooks on the parameters and would all-reduce again in the next epoch.
                outp = parts = x = batch = None  # noqa: F841
                del net
                gc.collect()
            total_loss, total_seen = ctx.sum_floats([float(sums[0]), float(seen)])
            judged = ema.model if ema is not None else model
            val = validate(judged, val_loader, pos_weight, args.lam, plan.use_boxes, args.box_loss, device) if main else None
            value = ctx.broadcast_floats([monitor_value(plan.monitor, val) if main else None])[0]
            if not warm:
                step_scheduler(scheduler, value)
            if main and plan.name == "classify":
                record_val_probs(out / "val_probs.npz", [v.name for v in val_set], epoch, val.probs)
            if args.keep == "last" or improved(plan.monitor, value, best):
                best, bad = value, 0
                best_epoch[plan.name] = epoch
                if main:
                    from safetensors.torch import save_file

                    save_file(model_state(judged), str(best_path))
            elif not warm:
                bad += 1
            stage_epochs[plan.name] = epoch
            if main:
                _log(log_path, history, plan.name, epoch, total_loss / max(total_seen, 1), val, optimizer, time.time() - started, quiet=args.quiet)
                save_checkpoint(
                    ckpt_dir,
                    model,
                    optimizer,
                    {
                        "stage": si, "epoch": epoch, "best": best, "bad": bad, "history": history,
                        "stage_epochs": stage_epochs, "best_epoch": best_epoch, "scheduler": scheduler.state_dict(),
                        "elapsed": time.time() - started, "args": jsonable_args(args), "commands": commands,
                        "ema_updates": ema.updates if ema is not None else 0, "world_size": ctx.world,
                    },
                )
                if ema is not None:
                    from safetensors.torch import save_file

                    save_file(model_state(ema.model), str(ckpt_dir / "ema.safetensors"))
            ctx.barrier()  # the checkpoint is complete before any rank goes on
            if bad >= args.patience:
                say(f"early stop: {plan.name} did not improve for {bad} epochs")
                break
        resume = None
        stage_epochs.setdefault(plan.name, 0)
        if main and plan.name == "classify" and not best_path.is_file():  # no epoch ran or none had a defined AUC
            from safetensors.torch import save_file

            save_file(model_state(model), str(best_path))

    if not main:  # rank 0 alone evaluates and writes the model folder
        return out / "model"
    # ---- final model: best weights, thresholds on validation, evaluation, card
    from safetensors.torch import load_file

    if best_path.is_file():
        model.load_state_dict(load_file(str(best_path)))
    train_minutes = (time.time() - started) / 60.0
    val = validate(model, val_loader, pos_weight, args.lam, True, args.box_loss, device)
    val_targets = np.stack([s.target(config.classes) for s in val_set])
    config.thresholds = choose_thresholds(val_targets, val.probs, config.classes)
    from .teacher import validation_comparison

    comparison = validation_comparison([s.name for s in val_set], val_targets, val.probs, teacher)
    info = {
        "images": str(args.images), "labels": str(args.labels), "boxes": str(args.boxes),
        "n_images": len(samples), "n_patients": len({s.patient for s in samples}),
        "n_boxed": sum(bool(s.boxes) for s in samples), "n_boxes": sum(len(s.boxes) for s in samples),
        "n_train": len(train_set), "n_val": len(val_set),
        "n_train_boxes": sum(len(s.boxes) for s in train_set), "n_val_boxes": sum(len(s.boxes) for s in val_set),
        "seed": args.seed, "split_seed": split_seed, "init_seed": args.init_seed, "val_fraction": args.val_fraction, "pretrained": pretrained_text,
        "stage_epochs": stage_epochs, "best_epoch": best_epoch, "lambda": args.lam, "box_loss": args.box_loss,
        "input_size": args.input_size, "batch_size": args.batch_size, "lr": args.lr, "backbone_lr": args.backbone_lr,
        "freeze": args.freeze, "ema": args.ema, "prior_fallback": fallback, "device": str(device), "threads": threads, "processes": ctx.world,
        "train_minutes": train_minutes, "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "torch": torch.__version__, "command": command, "commands": commands,
        "teacher": teacher_info, "validation_ci": comparison,
        "train_label_counts": label_counts(train_set, config.classes), "val_label_counts": label_counts(val_set, config.classes),
    }
    result = evaluate_samples(
        model, val_set, model_info={"source": "this model folder", "revision": "see the sha256 above", "architecture": config.architecture},
        device=device, batch_size=args.eval_batch_size, cam_method=args.cam, progress=not args.quiet,
    )
    write_report(result, out / "eval", plots=not args.no_plots, title="Validation split")
    config.extra = {
        "training": {k: v for k, v in info.items() if k not in ("train_label_counts", "val_label_counts")},
        "validation": {
            "n_images": result.n_images, "n_boxes": result.n_boxes, "auc": result.auc, "mean_auc": result.mean_auc,
            "iou_accuracy": result.iou_accuracy, "cam_iou_accuracy": result.cam_iou_accuracy,
            "prior_iou_accuracy": result.prior_iou_accuracy, "cam_method": result.cam_method,
        },
    }
    config.validate()
    body = training_card_body(info, report_markdown(result, title="Validation", ours_name="this model"))
    folder = save_model(model.to("cpu"), out / "model", card=render_card(config, "{sha256}", body))
    write_splits(folder, [s.name for s in train_set], [s.name for s in val_set])
    mean = "n/a" if result.mean_auc is None else f"{result.mean_auc:.3f}"
    print(f"done in {train_minutes:.1f} min: validation mean AUC {mean}; model in {folder}")
    return folder


def _command_text(command: Any) -> str:
    if isinstance(command, (list, tuple)):
        return " ".join(shlex.quote(str(a)) for a in command)
    return str(command) if command else ""


def _log(path: Path, history: list, stage: str, epoch: int, train_loss: float | None, val: ValResult, optimizer, elapsed: float, quiet: bool) -> None:
    from tqdm.auto import tqdm

    lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
    rec = {
        "stage": stage, "epoch": epoch, "train_loss": train_loss, "val_loss": val.loss, "val_cls_loss": val.cls_loss,
        "val_box_loss": val.box_loss, "val_mean_auc": val.mean_auc, "val_mean_iou": val.mean_iou, "lr": lrs,
        "elapsed_s": round(elapsed, 1),
    }
    history.append(rec)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")
    auc = "n/a" if val.mean_auc is None else f"{val.mean_auc:.4f}"
    iou = "n/a" if val.mean_iou is None else f"{val.mean_iou:.3f}"
    tl = "-" if train_loss is None else f"{train_loss:.4f}"
    msg = f"{stage} epoch {epoch}: train loss {tl}, val loss {val.loss:.4f}, val mean AUC {auc}, val box IoU {iou}, {elapsed / 60:.1f} min"
    if quiet:
        print(msg, file=sys.stderr)
    else:
        tqdm.write(msg)


# ---------------------------------------------------------------------------------------------------------- CLI
def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``python -m cxrdemo train``."""
    p = parser
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--images", required=True, help="folder of radiographs (only those with a label row are used)")
    p.add_argument("--labels", required=True, help="NIH-format label CSV (Data_Entry_2017_v2020.csv; .gz ok)")
    p.add_argument("--boxes", default=None, help="NIH-format box CSV (BBox_List_2017.csv; .gz ok)")
    p.add_argument("--out", required=True, help="run folder (model/ inside it is the Hub-ready result)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="backbone name (see cxrdemo.backbones)")
    p.add_argument("--pretrained", default="imagenet", help="starting weights: imagenet, none, or a .safetensors backbone state dict")
    p.add_argument("--input-size", type=int, default=224, help="square input side in pixels (images are resized to it)")
    p.add_argument("--epochs", type=int, default=30, help="most epochs of stage 1 (classification)")
    p.add_argument("--stage2-epochs", type=int, default=8, help="most epochs of stage 2 (both heads)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="stage-1 epochs training the head on a frozen backbone")
    p.add_argument("--batch-size", type=int, default=16, help="training batch size (per process under torchrun)")
    p.add_argument("--eval-batch-size", type=int, default=32, help="batch size of validation and the final evaluation")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the heads")
    p.add_argument("--backbone-lr", type=float, default=2e-4, help="learning rate of the trainable backbone stages")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    p.add_argument("--lambda", dest="lam", type=float, default=0.4, help="CLN lambda: weight of classification vs 1-IoU (CLN: 0.1-0.4)")
    p.add_argument("--box-loss", default="iou", choices=BOX_LOSSES, help="1-IoU (CLN) or 1-GIoU")
    p.add_argument("--freeze", type=int, default=3, help="leading backbone stages kept frozen (lite0: stem + blocks 0-1 = 3)")
    p.add_argument("--stage2-backbone", default="frozen", choices=("frozen", "train"), help="train the backbone in stage 2 too?")
    p.add_argument("--ema", type=float, default=0.0, help="stage 1: validate and keep an exponential moving average of the weights with this decay (0: off)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the classification head")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of patients in the validation split (patient-wise, stratified)")
    p.add_argument("--folds", type=int, default=None, metavar="K", help="k-fold cross-validation over patients: split the images into K patient-wise stratified folds (seed --split-seed) and hold out fold --fold for validation (replaces --val-fraction)")
    p.add_argument("--fold", type=int, default=None, metavar="I", help="with --folds K: the fold (0..K-1) held out for validation")
    p.add_argument("--schedule", default="plateau", choices=("plateau", "cosine"), help="learning rates: halve on a validation plateau (--plateau-patience), or cosine decay to 0 over the stage's epochs after warm-up (independent of validation, as a refit on every image needs)")
    p.add_argument("--keep", default="best", choices=("best", "last"), help="stage 1: keep the epoch with the best validation mean AUC (early stopping after --patience), or the last epoch (fixed epoch count, no selection on validation)")
    p.add_argument("--patience", type=int, default=6, help="early stopping: epochs without validation improvement")
    p.add_argument("--plateau-patience", type=int, default=2, help="ReduceLROnPlateau patience (halves the learning rates)")
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stage 1 stops at 85%% of it")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation, shuffling and augmentation (and of the split unless --split-seed)")
    p.add_argument("--init-seed", type=int, default=None, help="seed of the heads' random initialisation (default: --seed); runs meant for `cxrdemo soup` share one, so they differ only in data order and augmentation")
    p.add_argument("--split-seed", type=int, default=None, help="seed of the patient-wise split (default: --seed); fix it to train several seeds on one split, e.g. for `cxrdemo soup`")
    p.add_argument("--workers", type=int, default=None, help="DataLoader worker processes per training process (default: 0 on CPU; on CUDA min(8, cores per process), with pinned memory)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores; under torchrun the cores divided by the processes per machine)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps; under torchrun auto/cuda (nccl, one GPU per process) or cpu (gloo)")
    p.add_argument("--cache-dir", default=None, help="decoded-image cache folder (default $CXRDEMO_CACHE or ~/.cache/cxrdemo/images)")
    p.add_argument("--no-disk-cache", action="store_true", help="keep decoded images in memory only")
    p.add_argument("--no-augment", action="store_true", help="no training augmentation (small affine + brightness/contrast)")
    p.add_argument("--cam", default="gradcam", help="CAM method of the final validation evaluation")
    p.add_argument("--limit", type=int, default=None, help="use only the first N labelled images (smoke tests)")
    p.add_argument("--teacher-predictions", default=None, metavar="CSV", help="knowledge distillation: a CSV of per-image teacher probabilities ('Image Index', prob_<Label> for the 14 labels); images without a row use the labels alone")
    p.add_argument("--distill-weight", type=float, default=0.5, help="A: classification loss = A * BCE(teacher probabilities) + (1 - A) * weighted BCE(labels) on images with a teacher row (only with --teacher-predictions)")
    p.add_argument("--distill-temperature", type=float, default=1.0, help="T: teacher and student logits divided by T, distillation term scaled by T^2 (Hinton et al.)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint if there is one")
    p.add_argument("--no-plots", action="store_true", help="skip the ROC and IoU-accuracy plots of the final evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars (epoch lines still go to stderr)")
    return p


def run_train(args: argparse.Namespace) -> int:
    """Run ``train`` from parsed arguments; returns the exit code."""
    train(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cxrdemo.train ...`` is ``python -m cxrdemo train ...`` (kept so recorded commands still run)."""
    from .cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
