"""``python -m cxrdemo cv``: the cross-validated estimate of a recipe, its thresholds, and the refitted model's card.

    python -m cxrdemo cv --runs B/fold0 B/fold1 B/fold2 --name "full fine-tune" \\
        [--compare A/fold0 A/fold1 A/fold2 --compare-name "3 stages frozen"] [--compare ... --compare-name ...] \\
        --labels LABELS.csv [--teacher-predictions CSV] [--refit B/refit/model] --out FOLDER

Writes ``FOLDER/cv.json`` (every figure) and ``FOLDER/cv.md`` (the card sections). With ``--refit``, FOLDER also
becomes the final model folder: the refit's weights (unchanged, same sha256), its ``config.json`` with the thresholds
chosen on the out-of-fold predictions of ``--runs`` and the estimate in ``extra.cross_validation``, its
``data_splits.json`` (every image a training image) and the full card. See docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.config import ModelConfig
from .cv import OutOfFold, gather_out_of_fold, paired_difference, recipe_estimate, targets_for, teacher_comparison
from .cv_card import commands_section, estimate_section, refit_card_text, threshold_section
from ..errors import InputError
from ..metrics import choose_thresholds
from ..datasets.nih import NIH_CLASSES
from .thresholds import choose_specificity_thresholds, default_specificity, findings_per_image


@dataclass
class CvResult:
    """What ``cv`` wrote: the report folder, the chosen recipe's estimate, and the final model folder (``--refit``)."""

    out: Path
    mean_auc: float | None
    lo: float | None
    hi: float | None
    median_findings: float
    model_folder: Path | None


def threshold_rule_text(specificity: float, n_classes: int, min_positives: int) -> str:
    """The rule, in words, for the card."""
    return (
        f"Rule: per class, the lowest threshold at which at most {100 * (1 - specificity):.1f}% of the out-of-fold images "
        f"WITHOUT that finding score at or above it (a fixed specificity of {specificity:.3f} = 1 - 1/{n_classes} for "
        f"{n_classes} classes; the threshold is the midpoint between two neighbouring negative scores). So an image free "
        f"of every finding is expected to show {n_classes} x {1 - specificity:.3f} = {n_classes * (1 - specificity):.1f} "
        "false finding in all, whatever a class's prevalence or AUC. The rule needs negatives only, so it is defined for "
        f"rare classes too; for a class with fewer than {min_positives} out-of-fold positives the sensitivity below rests "
        "on too few images to mean much (marked). Chosen for a demo page: a handful of findings, each one unusual for an "
        "image without it. It is not a diagnostic operating point."
    )


def coverage_note(oof: OutOfFold) -> str:
    """Empty when every fold ran; else which folds and images the figures rest on."""
    if oof.complete:
        return ""
    ran = [r.fold for r in oof.runs]
    return (
        f"**Only fold(s) {', '.join(map(str, ran))} of {oof.runs[0].folds} ran to the end** (the others did not finish in the "
        f"time available): the out-of-fold figures below rest on their {len(oof.names)} held-out images, not on all "
        f"{len(oof.all_names)}; each of those is still predicted by a model that never saw it or its patient."
    )


def run_cv(args: argparse.Namespace) -> CvResult:
    """Gather, estimate, choose thresholds, write the report (and the final model folder with ``--refit``)."""
    classes = list(NIH_CLASSES)
    chosen = gather_out_of_fold(args.runs, args.name, args.epoch, args.allow_partial)
    targets = targets_for(chosen.names, args.labels, classes)
    est = recipe_estimate(chosen, targets, classes)
    others = []
    compare_names = list(args.compare_name or [])
    if len(compare_names) > len(args.compare or []):
        raise InputError(f"{len(compare_names)} --compare-name for {len(args.compare or [])} --compare; give one name per --compare, in order")
    for i, runs in enumerate(args.compare or []):
        name = compare_names[i] if i < len(compare_names) else f"other recipe {i + 1}"
        other = gather_out_of_fold(runs, name, args.epoch, args.allow_partial)
        if not set(other.names) <= set(chosen.names) or other.all_names != chosen.all_names:
            raise InputError(f"--compare {name!r} holds out images that --runs does not: cross-validate every recipe on one partition (same --folds and --split-seed)")
        rows = [chosen.names.index(n) for n in other.names]  # the paired comparison is on the images both hold out
        other_t = targets[rows]
        diff = paired_difference(other_t, chosen.probs[rows], other.probs)
        others.append((recipe_estimate(other, other_t, classes), {**diff, "n_images": len(rows)}))
    teacher = teacher_comparison(chosen, targets, args.teacher_predictions, classes) if args.teacher_predictions else None
    spec = default_specificity(len(classes)) if args.specificity is None else args.specificity
    picked = choose_specificity_thresholds(targets, chosen.probs, classes, spec, args.min_positives)
    counts = findings_per_image(chosen.probs, [t.threshold for t in picked])
    youden = choose_thresholds(targets, chosen.probs, classes)
    youden_counts = findings_per_image(chosen.probs, [youden[c] for c in classes])
    k = chosen.runs[0].folds
    per_fold_train = sorted(len(r.train_names) for r in chosen.runs)
    estimate_lines = estimate_section(est, others, teacher, k, f"{per_fold_train[0]}-{per_fold_train[-1]}", coverage_note(chosen), len(chosen.all_names))
    rule = threshold_rule_text(spec, len(classes), args.min_positives)
    threshold_lines = threshold_section(rule, picked, est.per_class, counts, youden_counts, targets.sum(axis=1), args.min_positives)
    if args.notes:
        try:
            threshold_lines += [Path(args.notes).read_text(encoding="utf-8").rstrip(), ""]
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--notes {args.notes}: cannot read it ({exc.__class__.__name__}); give a UTF-8 Markdown file") from None
    command = "python -m cxrdemo " + " ".join(shlex.quote(str(a)) for a in (getattr(args, "argv", None) or sys.argv[1:]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "estimate": asdict(est), "compared": [{"estimate": asdict(o), "chosen_minus_it": d} for o, d in others],
        "teacher": teacher, "thresholds": [asdict(t) for t in picked], "specificity": spec,
        "findings_per_image": {"median": float(np.median(counts)), "mean": float(np.mean(counts)),
                               "youden_median": float(np.median(youden_counts)), "labels_median": float(np.median(targets.sum(axis=1)))},
        "folds": k, "split_seed": chosen.runs[0].seed, "runs": [str(r.folder) for r in chosen.runs], "command": command,
    }
    (out / "cv.json").write_text(json.dumps(doc, indent=1, default=_json_default) + "\n", encoding="utf-8")
    (out / "cv.md").write_text("\n".join(estimate_lines + threshold_lines) + "\n", encoding="utf-8")
    folder = None
    if args.refit:
        folder = apply_to_refit(args.refit, out, chosen, {t.label: t.threshold for t in picked}, doc, estimate_lines, threshold_lines, command)
    return CvResult(out, est.mean_auc, est.lo, est.hi, float(np.median(counts)), folder)


def apply_to_refit(refit: str | Path, out: Path, chosen: OutOfFold, thresholds: dict[str, float], doc: dict[str, Any], estimate_lines: list[str], threshold_lines: list[str], command: str) -> Path:
    """Copy the refit model into ``out`` with the thresholds, the estimate in ``config.extra`` and the full card."""
    from ..modelcard import render_card
    from ..provenance import SPLITS_NAME, image_key, read_splits
    from ..models.weights import CARD_NAME, CHECKSUM_NAME, WEIGHTS_NAME, file_sha256

    refit = Path(refit)
    config = ModelConfig.load(refit)
    training = dict((config.extra or {}).get("training") or {})
    if not training.get("refit"):
        raise InputError(f"{refit} is not a `train --refit` model (its config records no refit); pass RUN/model of a --refit run")
    splits = read_splits(refit)
    if splits is None or splits.validation or set(splits.train) != {image_key(n) for n in chosen.all_names}:
        raise InputError(f"{refit} was not trained on exactly the {len(chosen.all_names)} images of the folds; refit on the same data")
    if Path(out).resolve() != refit.resolve():
        for name in (WEIGHTS_NAME, CHECKSUM_NAME, SPLITS_NAME):
            shutil.copyfile(refit / name, Path(out) / name)
    config.thresholds = dict(thresholds)
    config.extra = {**(config.extra or {}), "cross_validation": {k: v for k, v in doc.items() if k != "thresholds"}}
    config.validate()
    config.save(out)
    fold_commands = [r.commands for r in chosen.runs if r.commands]
    body = refit_card_text(training, estimate_lines, threshold_lines, commands_section(fold_commands, training.get("commands") or [], command))
    digest = file_sha256(Path(out) / WEIGHTS_NAME)
    (Path(out) / CARD_NAME).write_text(render_card(config, digest, body), encoding="utf-8")
    return Path(out)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---------------------------------------------------------------------------------------------------------- CLI
def add_cv_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``python -m cxrdemo cv``."""
    p = parser
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN", help="the K `train --folds K --fold I` run folders of the recipe to estimate (and to take thresholds from)")
    p.add_argument("--name", default="recipe", help="the recipe's name in the card")
    p.add_argument("--compare", nargs="+", action="append", default=None, metavar="RUN",
                   help="the K fold runs of another recipe on the same partition (paired comparison); repeat for more recipes")
    p.add_argument("--compare-name", action="append", default=None, help="that recipe's name in the card (one per --compare, in order)")
    p.add_argument("--labels", required=True, help="the NIH-format label CSV the folds trained with")
    p.add_argument("--teacher-predictions", default=None, metavar="CSV", help="the teacher's predictions, to compare on the images with a row")
    p.add_argument("--epoch", type=int, default=None, help="whose predictions to use (default: the last epoch every fold recorded)")
    p.add_argument("--specificity", type=float, default=None, help="per-class specificity of the thresholds (default 1 - 1/classes)")
    p.add_argument("--min-positives", type=int, default=5, help="a class with fewer out-of-fold positives gets its sensitivity marked unreliable")
    p.add_argument("--allow-partial", action="store_true", help="accept a subset of the K folds (the card then says which folds and images the figures rest on)")
    p.add_argument("--refit", default=None, metavar="MODEL", help="RUN/model of the `train --refit` run of this recipe: OUT becomes the final model folder")
    p.add_argument("--notes", default=None, metavar="MD", help="a Markdown file added to the card after the thresholds (e.g. the recipe search of earlier rounds)")
    p.add_argument("--out", required=True, help="folder for cv.json and cv.md (and the final model with --refit)")
    return p


def run_cv_command(args: argparse.Namespace) -> int:
    """Run ``cv`` from parsed arguments; returns the exit code."""
    res = run_cv(args)
    mean = "n/a" if res.mean_auc is None else f"{res.mean_auc:.3f} (95% CI {res.lo:.3f}-{res.hi:.3f})"
    where = f"; final model in {res.model_folder}" if res.model_folder else ""
    print(f"out-of-fold mean AUC {mean}; median findings per image {res.median_findings:g}; report in {res.out}{where}")
    return 0
