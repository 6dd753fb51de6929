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

K-fold cross-validation and the refit (see docs/training.md): ``--folds K --fold I`` holds out fold ``I`` of a
patient-wise stratified K-fold partition (every image is validation in exactly one fold) and records each epoch's
validation probabilities in ``val_probs.npz``; ``cxrdemo cv`` gathers the folds' out-of-fold predictions.
``--refit`` trains on every image with no validation split (fixed epochs, cosine schedule, last epoch kept), so
the final model uses every image; ``cxrdemo cv --refit RUN/model`` then adds the thresholds chosen on the
out-of-fold predictions and the cross-validated estimate to its card.

Outputs in ``--out``: ``model/`` (Hub-ready: config.json with thresholds chosen on validation by Youden's J and
prior boxes, model.safetensors, its sha256, README.md card with data, command, seed, time and the validation
evaluation), ``eval/`` (``evaluate`` on the validation split), ``checkpoint/`` (resumable with ``--resume``),
``best.safetensors``, ``log.jsonl``, ``split.json`` and ``val_images.txt``.
"""


from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.backbones import get_spec
from .checkpoint import read_state
from ..models.config import ModelConfig
from ..datasets.samples import Sample
from .losses import positive_weights
from ..metrics import choose_thresholds
from ..models.cln import MultiTaskNet
from ..datasets.nih import NIH_BOX_CLASSES, NIH_CLASSES
from .args import add_train_arguments, check_train_arguments  # noqa: F401  (add_train_arguments: the CLI's)
from .card import training_card_body
from .loop import StagePlan, validate
from .prepare import init_box_head_at_priors, prior_boxes
from .stages import TrainRun, run_stages


def default_cache_dir() -> Path:
    """``$CXRDEMO_CACHE`` or ``~/.cache/cxrdemo/images`` (decoded pixels: never inside the repository)."""
    env = os.environ.get("CXRDEMO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cxrdemo" / "images"


@dataclass
class RunData:
    """The images of a run and how they were split."""

    samples: list[Sample]
    train_set: list[Sample]
    val_set: list[Sample]
    split_seed: int
    split: str  # one line for the card: how the validation images were chosen
    priors: dict[str, list[float]]
    prior_fallback: list[str]


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
    from ..distributed import setup as setup_distributed

    started = time.time()
    check_train_arguments(args)
    teacher = None
    if args.teacher_predictions:
        from .teacher import read_teacher_predictions

        teacher = read_teacher_predictions(args.teacher_predictions, NIH_CLASSES)
    ctx = setup_distributed(args.device)
    try:
        return _train(args, ctx, teacher, started)
    finally:
        ctx.close()


def _train(args: argparse.Namespace, ctx, teacher, started: float) -> Path:
    """Data, model, loaders, the stages; then rank 0 writes the model folder."""
    say = (lambda msg: print(msg, file=sys.stderr)) if ctx.main else (lambda msg: None)  # noqa: E731
    # under torchrun on CPU, the cores are shared by the processes of this machine
    threads = _setup_threads(args.threads or (max(1, (os.cpu_count() or 1) // ctx.local_world) if ctx.enabled else None))
    _seed_everything(args.seed)
    out = Path(args.out)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
    data = select_data(args, ctx.main, out, say)
    model, config = build_model(args, data, ctx)
    run = make_run(args, ctx, out, started, data, model, config, teacher, say)
    plans = [StagePlan("classify", args.epochs, "auc", False), StagePlan("joint", args.stage2_epochs, "loss", True)]
    start_stage, start_epoch = 0, 1
    if run.resume is not None:
        start_stage, start_epoch = int(run.resume["stage"]), int(run.resume["epoch"]) + 1
        say(f"resuming {plans[start_stage].name} at epoch {start_epoch} from {run.ckpt_dir}")
    run_stages(run, plans, start_stage, start_epoch)
    if not ctx.main:  # rank 0 alone evaluates and writes the model folder
        return out / "model"
    from safetensors.torch import load_file

    if run.best_path.is_file():
        model.load_state_dict(load_file(str(run.best_path)))
    info = run_info(run, data, threads, teacher)
    if args.refit:
        return finish_refit(run, data, info)
    return finish_validated(run, data, info, teacher)


def select_data(args: argparse.Namespace, main: bool, out: Path, say) -> RunData:
    """Labelled images, their split (``--val-fraction``, ``--folds``/``--fold`` or ``--refit``), prior boxes;
    rank 0 writes ``split.json`` and ``val_images.txt``."""
    import json

    from ..datasets.samples import fold_split, load_samples, require_certain, split_patients

    found = load_samples(args.images, args.labels, args.boxes, NIH_CLASSES)
    require_certain(found.samples, args.labels)
    samples = found.samples[: args.limit] if args.limit else found.samples
    split_seed = args.seed if args.split_seed is None else args.split_seed
    if args.refit:
        train_set, val_set = list(samples), []
        split = "none: every image is a training image (refit after k-fold cross-validation)"
    elif args.folds:
        train_set, val_set = fold_split(samples, args.folds, args.fold, split_seed)
        split = f"fold {args.fold} of {args.folds} patient-wise, stratified folds (seed {split_seed}) held out for validation"
    else:
        train_set, val_set = split_patients(samples, args.val_fraction, split_seed)
        split = f"patient-wise, stratified (seed {split_seed}, validation fraction {args.val_fraction})"
    if main:
        (out / "val_images.txt").write_text("".join(s.name + "\n" for s in val_set), encoding="utf-8")
        doc = {"seed": split_seed, "folds": args.folds, "fold": args.fold, "train": [s.name for s in train_set], "val": [s.name for s in val_set]}
        (out / "split.json").write_text(json.dumps(doc, indent=0) + "\n", encoding="utf-8")
    if val_set and not any(s.boxes for s in val_set):
        say(
            "warning: the validation split holds no radiologist box: the box head cannot be validated (val box IoU "
            "will read n/a, and stage 2 is judged on the classification loss alone)"
        )
    priors, fallback = prior_boxes(train_set, NIH_BOX_CLASSES)
    return RunData(list(samples), train_set, val_set, split_seed, split, priors, fallback)


def build_model(args: argparse.Namespace, data: RunData, ctx) -> tuple[MultiTaskNet, ModelConfig]:
    """The model and its config: starting weights, heads from ``--init-seed``, box head at the prior boxes."""
    spec = get_spec(args.backbone)
    pretrained_text = {
        "imagenet": f"ImageNet: {spec.imagenet_source}",
        "none": "none (random initialisation)",
    }.get(args.pretrained or "none", f"backbone state dict {Path(args.pretrained).name}")
    config = ModelConfig(
        architecture=args.backbone, input_size=args.input_size, dropout=args.dropout, prior_boxes=data.priors, pretrained=pretrained_text,
    )
    if args.init_seed is not None:  # the heads' random start from their own seed (shared by runs meant for a soup)
        _seed_everything(args.init_seed)
    model = MultiTaskNet(config, None if args.pretrained in (None, "", "none") else args.pretrained)
    init_box_head_at_priors(model, data.priors)
    if args.init_seed is not None:
        _seed_everything(args.seed)
    model.to(ctx.device)
    if ctx.device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    ctx.broadcast_state(model)  # identical starting weights on every rank
    return model, config


def make_run(args, ctx, out: Path, started: float, data: RunData, model: MultiTaskNet, config: ModelConfig, teacher, say) -> TrainRun:
    """Decode (cached) images, build the loaders, the teacher's targets and the command record; read the checkpoint
    when resuming."""
    from tqdm.auto import tqdm

    from .dataset import Augment, CxrDataset, ImageCache, make_loader

    cuda = ctx.device.type == "cuda"
    workers = args.workers if args.workers is not None else (min(8, max(1, (os.cpu_count() or 1) // ctx.local_world)) if cuda else 0)
    cache_folder = None if args.no_disk_cache else Path(args.cache_dir or default_cache_dir())
    if cache_folder is not None:
        say(f"note: decoded {args.input_size} px images are cached in {cache_folder} (--cache-dir to move it, --no-disk-cache to keep them in memory only)")
    # With worker processes and a disk cache, workers read the .npy files (the OS caches them) instead of each
    # holding a copy of every decoded image in memory (112k images x 224^2 bytes = 5.6 GB per copy).
    cache = ImageCache(args.input_size, cache_folder, memory=not (workers > 0 and cache_folder is not None))
    paths = [s.path for s in data.samples]
    # each rank decodes its share; then every rank finds the others' files in the disk cache
    cache.warm(paths[ctx.rank :: ctx.world], progress=lambda xs: tqdm(xs, desc="decode+resize (cached)", unit="img", leave=False, disable=args.quiet or not ctx.main))
    ctx.barrier()
    train_ds = CxrDataset(data.train_set, config.classes, config.box_classes, cache, None if args.no_augment else Augment(), args.seed)
    sampler = None
    if ctx.enabled:
        from torch.utils.data import DataLoader, DistributedSampler

        sampler = DistributedSampler(train_ds, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=args.seed, drop_last=False)
        train_loader = DataLoader(
            train_ds, batch_size=args.batch_size, sampler=sampler, num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0, drop_last=False,
        )
    else:
        train_loader = make_loader(train_ds, args.batch_size, True, workers, args.seed, cuda)
    val_loader = None
    if ctx.main and data.val_set:
        val_ds = CxrDataset(data.val_set, config.classes, config.box_classes, cache, None, args.seed)
        val_loader = make_loader(val_ds, args.eval_batch_size, False, workers, args.seed, cuda)
    pos_weight = positive_weights(np.stack([s.target(config.classes) for s in data.train_set])).to(ctx.device)
    teacher_probs = teacher_mask = None
    if teacher is not None:
        tp, tm = teacher.targets_for([s.name for s in data.train_set])
        teacher_probs, teacher_mask = torch.from_numpy(tp), torch.from_numpy(tm)
        say(
            f"teacher: {int(tm.sum())} of {len(data.train_set)} training images have teacher probabilities "
            f"({len(data.train_set) - int(tm.sum())} use the labels alone); distill weight {args.distill_weight}, "
            f"temperature {args.distill_temperature}"
        )
    resume = read_state(out / "checkpoint") if args.resume else None
    commands = [command_text(args, ctx)]
    run = TrainRun(
        args, ctx, out, started, config, model, train_ds, train_loader, sampler, val_loader, [s.name for s in data.val_set],
        pos_weight, teacher_probs, teacher_mask, commands, say, resume,
    )
    if resume is not None:
        previous = resume.get("commands") or [_command_text(resume.get("args", {}).get("command"))]
        run.commands = [c for c in previous if c] + commands
        run.history, run.stage_epochs, run.best_epoch = resume["history"], resume["stage_epochs"], resume["best_epoch"]
        run.started -= float(resume.get("elapsed", 0.0))
    return run


def command_text(args: argparse.Namespace, ctx) -> str:
    """The command line the user typed (the CLI passes it as ``args.argv``; ``args.command`` is just "train")."""
    typed = list(getattr(args, "argv", None) or sys.argv[1:])
    argv = typed if "train" in typed[:2] else ["train", *typed]
    launcher = ["python"]
    if ctx.enabled:
        nnodes = max(1, ctx.world // max(ctx.local_world, 1))
        launcher = ["torchrun", *([f"--nnodes {nnodes}"] if nnodes > 1 else []), f"--nproc_per_node {ctx.local_world}"]
    return " ".join([*launcher, *(shlex.quote(a) for a in ["-m", "cxrdemo", *argv])])


def run_info(run: TrainRun, data: RunData, threads: int, teacher) -> dict[str, Any]:
    """What the card and ``config.json`` record about the run: data, split, recipe, time, software."""
    args, samples, train_set, val_set = run.args, data.samples, data.train_set, data.val_set
    teacher_info = None
    if teacher is not None:
        n_with = int(teacher.targets_for([s.name for s in train_set])[1].sum())
        teacher_info = teacher.card_info(n_with, len(train_set), args.distill_weight, args.distill_temperature)
        teacher_info["val_images_with_teacher"] = int(teacher.targets_for([s.name for s in val_set])[1].sum()) if val_set else 0
    return {
        "images": str(args.images), "labels": str(args.labels), "boxes": str(args.boxes),
        "n_images": len(samples), "n_patients": len({s.patient for s in samples}),
        "n_boxed": sum(bool(s.boxes) for s in samples), "n_boxes": sum(len(s.boxes) for s in samples),
        "n_train": len(train_set), "n_val": len(val_set),
        "n_train_boxes": sum(len(s.boxes) for s in train_set), "n_val_boxes": sum(len(s.boxes) for s in val_set),
        "seed": args.seed, "split_seed": data.split_seed, "init_seed": args.init_seed, "val_fraction": args.val_fraction,
        "split": data.split, "folds": args.folds, "fold": args.fold, "refit": bool(args.refit),
        "schedule": args.schedule, "keep": args.keep, "pretrained": run.config.pretrained,
        "stage_epochs": run.stage_epochs, "best_epoch": run.best_epoch, "lambda": args.lam, "box_loss": args.box_loss,
        "input_size": args.input_size, "batch_size": args.batch_size, "lr": args.lr, "backbone_lr": args.backbone_lr,
        "freeze": args.freeze, "ema": args.ema, "augment": not args.no_augment, "prior_fallback": data.prior_fallback,
        "device": str(run.device), "threads": threads, "processes": run.ctx.world,
        "train_minutes": (time.time() - run.started) / 60.0, "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(), "torch": torch.__version__, "command": run.commands[-1], "commands": run.commands,
        "teacher": teacher_info,
    }


def finish_validated(run: TrainRun, data: RunData, info: dict[str, Any], teacher) -> Path:
    """Thresholds on validation (Youden's J), the validation evaluation, the card; returns the model folder."""
    from ..datasets.samples import label_counts
    from ..evaluate import evaluate_samples, write_report
    from ..modelcard import render_card
    from ..provenance import write_splits
    from ..report import report_markdown
    from .teacher import validation_comparison
    from ..models.weights import save_model

    args, model, config, val_set = run.args, run.model, run.config, data.val_set
    val = validate(model, run.val_loader, run.pos_weight, args.lam, True, args.box_loss, run.device)
    val_targets = np.stack([s.target(config.classes) for s in val_set])
    config.thresholds = choose_thresholds(val_targets, val.probs, config.classes)
    info["validation_ci"] = validation_comparison([s.name for s in val_set], val_targets, val.probs, teacher)
    info["train_label_counts"] = label_counts(data.train_set, config.classes)
    info["val_label_counts"] = label_counts(val_set, config.classes)
    result = evaluate_samples(
        model, val_set, model_info={"source": "this model folder", "revision": "see the sha256 above", "architecture": config.architecture},
        device=run.device, batch_size=args.eval_batch_size, cam_method=args.cam, progress=not args.quiet,
    )
    write_report(result, run.out / "eval", plots=not args.no_plots, title="Validation split")
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
    folder = save_model(model.to("cpu"), run.out / "model", card=render_card(config, "{sha256}", body))
    write_splits(folder, [s.name for s in data.train_set], [s.name for s in val_set])
    mean = "n/a" if result.mean_auc is None else f"{result.mean_auc:.3f}"
    print(f"done in {info['train_minutes']:.1f} min: validation mean AUC {mean}; model in {folder}")
    return folder


def finish_refit(run: TrainRun, data: RunData, info: dict[str, Any]) -> Path:
    """A model trained on every image: no validation, so no thresholds yet (``cxrdemo cv --refit`` adds those chosen on
    the out-of-fold predictions, and the cross-validated estimate); returns the model folder."""
    from ..modelcard import render_card
    from ..provenance import write_splits
    from .card import refit_card_body
    from ..models.weights import save_model

    config = run.config
    config.extra = {"training": info}
    config.validate()
    folder = save_model(run.model.to("cpu"), run.out / "model", card=render_card(config, "{sha256}", refit_card_body(info)))
    write_splits(folder, [s.name for s in data.train_set], [])
    print(f"done in {info['train_minutes']:.1f} min: trained on all {len(data.train_set)} images (no validation split); model in {folder}")
    return folder


def _command_text(command: Any) -> str:
    if isinstance(command, (list, tuple)):
        return " ".join(shlex.quote(str(a)) for a in command)
    return str(command) if command else ""


def run_train(args: argparse.Namespace) -> int:
    """Run ``train`` from parsed arguments; returns the exit code."""
    train(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cxrdemo.training.train ...`` is ``python -m cxrdemo train ...`` (kept so recorded commands still run)."""
    from ..cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
