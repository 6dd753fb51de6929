"""Arguments of ``python -m cxrdemo train`` and their checks."""

from __future__ import annotations

import argparse

from ..errors import InputError
from .losses import BOX_LOSSES


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``python -m cxrdemo train``."""
    p = parser
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--images", required=True, help="folder of radiographs (only those with a label row are used)")
    p.add_argument("--labels", required=True, help="NIH-format label CSV (Data_Entry_2017_v2020.csv; .gz ok)")
    p.add_argument("--boxes", default=None, help="NIH-format box CSV (BBox_List_2017.csv; .gz ok)")
    p.add_argument("--out", required=True, help="run folder (model/ inside it is the Hub-ready result)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="backbone name (see cxrdemo.models.backbones)")
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
    p.add_argument("--refit", action="store_true", help="train on EVERY image (no validation split) for exactly --epochs epochs, keeping the last (needs --schedule cosine, --keep last, --stage2-epochs 0); decision thresholds come later from the out-of-fold predictions (`cxrdemo cv --refit RUN/model`)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint if there is one")
    p.add_argument("--no-plots", action="store_true", help="skip the ROC and IoU-accuracy plots of the final evaluation")
    p.add_argument("--quiet", action="store_true", help="no progress bars (epoch lines still go to stderr)")
    return p



def check_train_arguments(args: argparse.Namespace) -> None:
    """Refuse contradictory or out-of-range options with a one-line :class:`InputError`."""
    if args.box_loss not in BOX_LOSSES:
        raise InputError(f"--box-loss must be one of {BOX_LOSSES}")
    if not 0.0 <= args.lam <= 1.0:
        raise InputError("--lambda must lie in [0, 1]")
    if not 0.0 <= args.distill_weight <= 1.0:
        raise InputError("--distill-weight must lie in [0, 1]")
    if not args.distill_temperature > 0.0:
        raise InputError("--distill-temperature must be > 0")
    if args.epochs < 1:
        raise InputError("--epochs must be at least 1")
    if args.folds is not None and args.fold is None:
        raise InputError("--folds K needs --fold I (0..K-1): the fold held out for validation")
    if args.fold is not None and args.folds is None:
        raise InputError("--fold I needs --folds K (the number of patient-wise folds)")
    if getattr(args, "refit", False):
        if args.folds is not None:
            raise InputError("--refit trains on every image: drop --folds/--fold")
        if args.schedule != "cosine" or args.keep != "last" or args.stage2_epochs != 0:
            raise InputError(
                "--refit has no validation split: use --schedule cosine --keep last --stage2-epochs 0 "
                "(the recipe the cross-validation folds ran with)"
            )
        if args.resume:
            raise InputError("--refit cannot --resume; start it again")
