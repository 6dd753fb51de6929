"""Model-card text of a k-fold cross-validated recipe and the model refitted on every image (``cxrdemo cv``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .cv import RecipeEstimate
from .thresholds import ClassThreshold
from .card import command_lines, recipe_lines, teacher_lines


def fmt(est: dict[str, Any] | RecipeEstimate | None) -> str:
    """``0.712 (95% CI 0.690-0.733)`` from an estimate (or a bootstrap dict)."""
    if est is None:
        return "n/a"
    get = est.get if isinstance(est, dict) else lambda k: getattr(est, k)
    if get("mean_auc") is None:
        return "n/a"
    lo, hi = get("lo"), get("hi")
    return f"{get('mean_auc'):.3f}" + (f" (95% CI {lo:.3f}-{hi:.3f})" if lo is not None else "")


def fmt_diff(d: dict[str, Any] | None) -> str:
    if not d or d.get("diff") is None:
        return "-"
    return f"{d['diff']:+.3f} ({d['lo']:+.3f} to {d['hi']:+.3f})"


def findings_summary(counts: np.ndarray) -> str:
    """``median 1; 0: 31%, 1: 40%, 2: 19%, 3 or more: 10%`` for per-image finding counts."""
    n = max(len(counts), 1)
    shares = [(counts == 0).sum(), (counts == 1).sum(), (counts == 2).sum(), (counts >= 3).sum()]
    parts = [f"{k}: {100 * s / n:.0f}%" for k, s in zip(("0", "1", "2", "3 or more"), shares)]
    return f"median {float(np.median(counts)):g}, mean {float(np.mean(counts)):.2f}; " + ", ".join(parts)


def estimate_section(chosen: RecipeEstimate, others: Sequence[tuple[RecipeEstimate, dict | None]], teacher: dict | None, k: int, n_train_per_fold: str, coverage: str = "", n_all: int | None = None) -> list[str]:
    """The ``## Expected performance`` section: the chosen recipe's out-of-fold estimate, every candidate, the teacher."""
    lines = [
        "## Expected performance: k-fold cross-validation over patients",
        "",
        f"Every shared image was used to train this model, so no shared image can judge it. Its recipe was judged by {k}-fold "
        f"cross-validation over patients: the {n_all or chosen.n_images} images were split into {k} patient-wise, stratified folds; for "
        f"each fold a model was trained with the same recipe on the other {k - 1} folds ({n_train_per_fold} images) and predicted "
        "the held-out fold. Each image is thus predicted exactly once, by a model that never saw it or its patient (the "
        "out-of-fold predictions). Every figure in this section and the next comes from those predictions, with NIH's "
        f"labels; none comes from this model. The fold models trained on {k - 1}/{k} of the images, this model on all of "
        "them, so the estimate is, if anything, slightly pessimistic.",
        "",
        *([coverage, ""] if coverage else []),
        f"**Estimate: out-of-fold mean AUC {fmt(chosen)}** over the 14 labels, {chosen.n_images} images "
        "(pooled over the folds; 95% percentile bootstrap interval, 1,000 resamples of images, seed 0; sklearn "
        "`roc_auc_score`; `cxrdemo/training/teacher.py` `bootstrap_mean_auc`).",
        "",
        "| Candidate recipe | Out-of-fold images | Out-of-fold mean AUC (95% CI) | Each fold on its own held-out images | Chosen minus it, paired on the images both hold out (95% CI) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for est, diff in [(chosen, None), *others]:
        folds = ", ".join("n/a" if v is None else f"{v:.3f}" for v in est.per_fold)
        name = f"**{est.recipe} (chosen)**" if est is chosen else est.recipe
        lines.append(f"| {name} | {est.n_images} | {fmt(est)} | {folds} | {fmt_diff(diff)} |")
    lines.append("")
    for est in [chosen, *(o for o, _ in others)]:
        curve = ", ".join(f"{e}: {'n/a' if v is None else f'{v:.3f}'}" for e, v in sorted(est.by_epoch.items()))
        lines.append(f"- {est.recipe}: out-of-fold mean AUC by epoch (the estimate uses epoch {est.epoch}, fixed before training): {curve}")
    if teacher:
        lines += [
            "",
            f"On the {teacher['n_images']} images with a teacher row (images of the teacher's own test fold), out-of-fold: "
            f"this recipe {fmt(teacher['ours'])}, the teacher (reproduce-chexnet DenseNet-121, ~78,000 NIH training images) "
            f"{fmt(teacher['teacher'])}; recipe minus teacher {teacher['ours'].get('diff_vs_second', 0):+.3f} "
            f"(95% CI {teacher['ours'].get('diff_lo', 0):+.3f} to {teacher['ours'].get('diff_hi', 0):+.3f}).",
        ]
    return lines + [""]


def threshold_section(rule: str, chosen: Sequence[ClassThreshold], per_class_auc: dict[str, float | None], counts: np.ndarray, youden_counts: np.ndarray, label_counts: np.ndarray, min_positives: int) -> list[str]:
    """The ``## Decision thresholds`` section: the rule, findings per image, and every class's threshold."""
    lines = [
        "## Decision thresholds (from the out-of-fold predictions)",
        "",
        rule,
        "",
        f"Findings per image at or above their thresholds, on the {len(counts)} out-of-fold predictions:",
        "",
        f"- these thresholds: {findings_summary(counts)}",
        f"- Youden's J per class on the same predictions (the previous rule), for comparison: {findings_summary(youden_counts)}",
        f"- NIH's labels on the same images: {findings_summary(label_counts)}",
        "",
        "The counts are of the fold models' predictions; this model, trained on more images with the same recipe, "
        "may be a little more confident, so on new images it may show slightly more findings than this.",
        "",
        "| Label | Out-of-fold positives | Out-of-fold AUC | Threshold | Sensitivity at it | Specificity at it |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in chosen:
        auc = per_class_auc.get(t.label)
        sens = "n/a" if t.sensitivity is None else f"{t.sensitivity:.2f}" + ("" if t.reliable else f" (< {min_positives} positives: unreliable)")
        spec = "n/a" if t.specificity is None else f"{t.specificity:.3f}"
        lines.append(f"| {t.label} | {t.positives} | {'n/a' if auc is None else f'{auc:.3f}'} | {t.threshold:.4f} | {sens} | {spec} |")
    return lines + [""]


def commands_section(fold_commands: Sequence[Sequence[str]], refit_commands: Sequence[str], cv_command: str) -> list[str]:
    """Every command that made this model, in order."""
    lines = ["## Every command", "", "As run, in this order (the paths are those given on each command line):", ""]
    for cmds in fold_commands:
        lines += [*command_lines(list(cmds), "Fold run:"), ""]
    lines += [*command_lines(list(refit_commands), "Refit on every image (this model's weights):"), ""]
    lines += [*command_lines([cv_command], "Out-of-fold estimate, thresholds and this card:"), ""]
    return lines


def refit_card_text(training: dict[str, Any], estimate_lines: list[str], threshold_lines: list[str], command_lines_: list[str]) -> str:
    """The body of the refit model's card: the estimate, thresholds, training recipe, boxes, commands, limitations."""
    d = dict(training)
    boxes = [
        "## Boxes",
        "",
        f"This model has no trained box head: the recipe runs no box stage (`--stage2-epochs 0`; in every earlier model the box "
        f"stage never beat its starting point). Its box for each class is the prior box: the per-class mean of the "
        f"{d.get('n_train_boxes', 0)} radiologist boxes of the shared images (all of them training images), the mean of all boxes "
        f"for {', '.join(d.get('prior_fallback') or []) or 'no class'}. Treat it as \"where this finding typically is\", and the "
        "Grad-CAM box as what the classifier looked at. On a boxed shared image the prior box was computed from that very "
        "box, so its IoU there is not a test.",
        "",
    ]
    training_lines = ["## Training (this model)", "", *recipe_lines(d), "", *teacher_lines(d)]
    limits = [
        "## Limitations",
        "",
        f"- Trained on only {d.get('n_train')} radiographs (NIH-scale models see ~100k); per-label out-of-fold AUCs rest on a "
        "handful of positives for the rare labels (see the table) and would move by several points with another partition.",
        "- No image outside the shared set has judged this model; the cross-validated estimate is of its recipe.",
        "- NIH labels were mined from reports by NLP and are noisy; the images come from one hospital.",
        *(["- The teacher's probabilities are a model's opinion, not ground truth: where it is wrong, this model learned its mistakes."] if d.get("teacher") else []),
        "- Research and teaching use only. Not a medical device; not for diagnosis or triage.",
    ]
    lines = [*estimate_lines, *threshold_lines, *training_lines, *boxes, *command_lines_, *limits]
    return "\n".join(lines)
