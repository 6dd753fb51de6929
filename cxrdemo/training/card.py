"""The training part of a model card: data, split, recipe, teacher, validation figures with their CIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def training_card_body(info: dict[str, Any], report_md: str) -> str:
    """Model-card body: data, recipe, exact command, seed, time, validation numbers, limitations."""
    d = info
    lines = ["## Training", "", *recipe_lines(d), "", *teacher_lines(d), *command_lines(d["commands"]), ""]
    return "\n".join(lines + results_and_limits(d, report_md))


def results_and_limits(d: dict[str, Any], report_md: str) -> list[str]:
    """The ``## Validation results`` section (CIs, the evaluate report) and ``## Limitations``."""
    return [*validation_header(d), *ci_lines(d), report_body(report_md), "", *limitations_lines(d)]


def recipe_lines(d: dict[str, Any]) -> list[str]:
    """Data, split, starting weights, recipe, thresholds, priors, seed/device/time, software (one bullet each)."""
    return [
        f"- data: NIH ChestX-ray14 radiographs, `{d['images']}` ({d['n_images']} labelled images of {d['n_patients']} patients; "
        f"{d['n_boxed']} images carry {d['n_boxes']} radiologist boxes), labels: `{d['labels']}` (NIH's Data_Entry_2017_v2020.csv "
        f"format), boxes: `{d['boxes']}` (NIH's BBox_List_2017.csv format)",
        split_line(d),
        f"- starting weights: {d['pretrained']}",
        f"- recipe: stage 1 classify ({stage1_text(d)}), "
        + (
            f"stage 2 joint ({d['stage_epochs'].get('joint', 0)} epochs run, best epoch {d['best_epoch'].get('joint')}; 0 = stage-1 model with prior boxes); "
            f"lambda {d['lambda']}, box loss {d['box_loss']}, "
            if d["stage_epochs"].get("joint", 0) else "no stage 2 (the box head stays at the prior boxes); "
        )
        + f"input {d['input_size']} px, batch {d['batch_size']}, AdamW lr {d['lr']} (heads) / {d['backbone_lr']} (backbone), "
        + (f"first {d['freeze']} backbone stages frozen, " if d["freeze"] else "every backbone stage trained (full fine-tune), ")
        + (f"stage-1 weights: exponential moving average (decay {d['ema']}), " if d.get("ema") else "")
        + ("augmentation: small affine + brightness/contrast, no flip" if d.get("augment", True) else "no augmentation")
        + (
            f"; classification loss {d['teacher']['distill_weight']} x BCE against the teacher's probabilities + "
            f"{1 - d['teacher']['distill_weight']:g} x weighted BCE against the labels on images with a teacher row "
            f"(temperature {d['teacher']['distill_temperature']}), weighted BCE alone on the others"
            if d.get("teacher") else ""
        ),
        "- decision thresholds: "
        + ("chosen afterwards by `cxrdemo cv` on the out-of-fold predictions of the cross-validation folds (see that section)"
           if d.get("refit") else "per class on validation, maximising Youden's J"),
        "- prior boxes: per-class mean training box"
        + (f"; no training box for {', '.join(d['prior_fallback'])}: the mean over all training boxes is used" if d["prior_fallback"] else ""),
        f"- seed: {d['seed']}" + (f" (heads initialised with seed {d['init_seed']})" if d.get("init_seed") is not None else "") + f"; device: {d['device']} ({d['threads']} thread{'' if d['threads'] == 1 else 's'}"
        + (f" in each of {d['processes']} DistributedDataParallel processes" if d.get("processes", 1) > 1 else "")
        + f"); training time: {d['train_minutes']:.1f} min; "
        f"finished {d['finished']}",
        f"- software: python {d['python']}, torch {d['torch']}, cxrdemo train",
    ]


def split_line(d: dict[str, Any]) -> str:
    """The ``- split:`` bullet: a validation fraction, a held-out fold, or none (a refit on every image)."""
    if d.get("refit"):
        return (
            f"- split: none: all {d['n_train']} images ({d['n_train_boxes']} boxes) are training images (the refit after "
            "k-fold cross-validation); their names are in `data_splits.json` (cxrdemo flags them when it analyses one)"
        )
    how = d.get("split") or f"patient-wise, stratified (seed {d.get('split_seed', d['seed'])}, validation fraction {d['val_fraction']})"
    return (
        f"- split: {how}: {d['n_train']} training images ({d['n_train_boxes']} boxes), {d['n_val']} validation images "
        f"({d['n_val_boxes']} boxes); no patient on both sides; their names are in `data_splits.json` (cxrdemo flags "
        "them when it analyses one)"
    )


def stage1_text(d: dict[str, Any]) -> str:
    """Stage 1's epochs: run and chosen (best on validation), or a fixed count with the last kept."""
    ran = d["stage_epochs"].get("classify", 0)
    schedule = "cosine learning-rate decay" if d.get("schedule") == "cosine" else "learning rates halved on a validation plateau"
    if d.get("keep") == "last":
        return f"{ran} epochs, {schedule}, the last epoch kept (no epoch chosen on validation)"
    return f"{ran} epochs run, best epoch {d['best_epoch'].get('classify')}, {schedule}"


def refit_card_body(d: dict[str, Any]) -> str:
    """Card body of a ``--refit`` model (every image trained on; no validation): recipe, command, limitations.
    ``cxrdemo cv --refit`` replaces it with the full card (cross-validated estimate, thresholds)."""
    lines = [
        "## Training", "", *recipe_lines(d), "", *teacher_lines(d), *command_lines(d["commands"]), "",
        "This model was trained on every image, so no image is left to judge it: its expected performance is the "
        "k-fold cross-validation estimate of its recipe (`cxrdemo cv`), and its decision thresholds come from the "
        "out-of-fold predictions. Until `cxrdemo cv --refit` has run, it has no thresholds (0.5 is used).",
        "", *limitations_lines(d),
    ]
    return "\n".join(lines)


def command_lines(commands: list[str], title: str | None = None) -> list[str]:
    """``Exact command:`` and a fenced block (the resume wording when a run was resumed)."""
    head = title or ("Exact command:" if len(commands) == 1 else "Exact commands (the run was stopped and resumed from its checkpoint with `--resume`):")
    return [head, "", "```", *commands, "```"]


def validation_header(d: dict[str, Any]) -> list[str]:
    """The ``## Validation results`` heading and what the split was used for."""
    return [
        "## Validation results",
        "",
        f"Measured with `cxrdemo evaluate` on the validation split ({d['n_val']} images, {d['n_val_boxes']} ground-truth boxes). "
        "The validation split chose the best epoch and the decision thresholds, so these numbers are optimistic; a "
        "separate holdout judges the model.",
        "",
    ]


def report_body(report_md: str) -> str:
    """An ``evaluate`` report's markdown without its title, its sections one level down."""
    body = report_md.split("\n", 1)[1] if report_md.startswith("# ") else report_md
    return body.replace("\n## ", "\n### ").strip()


def limitations_lines(d: dict[str, Any]) -> list[str]:
    """The ``## Limitations`` section."""
    return [
        "## Limitations",
        "",
        f"- Trained on only {d['n_train']} radiographs (NIH-scale models see ~100k). "
        "AUCs per label rest on a handful of validation positives (see the table) and move by several points with a different split.",
        f"- Very few radiologist boxes ({d['n_boxes']} in all, {d['n_train_boxes']} for training, {d['n_val_boxes']} for validation): the box head "
        "barely moves from the prior boxes, and the IoU-accuracy figures above are anecdotes, not estimates.",
        "- NIH labels were mined from reports by NLP and are noisy; the images come from one hospital.",
        *(["- The teacher's probabilities are a model's opinion, not ground truth: where it is wrong, this model learned its mistakes."] if d.get("teacher") else []),
        "- Research and teaching use only. Not a medical device; not for diagnosis or triage.",
    ]


def soup_card_body(first: dict[str, Any], ingredients: list[dict[str, Any]], comparison: dict[str, Any], command: str, report_md: str) -> str:
    """Model-card body of a weight average (``cxrdemo soup``): how it was made, each ingredient beside it, the
    shared recipe (the first ingredient's), validation figures with intervals, limitations."""
    d = dict(first, validation_ci=comparison)
    n = len(ingredients)
    lines = [
        "## How this model was made: a weight average (model soup)",
        "",
        f"This model is the uniform average of the weights of {n} models trained on the same split from the same "
        "starting weights (Wortsman et al., \"Model soups\", ICML 2022): one network, so it costs one forward pass like "
        "each of them. The backbone, its batch-norm statistics and the classification head are averaged; the box head "
        "is the first model's (its MLP units are not aligned across runs). Decision thresholds were chosen again on "
        "the validation split.",
        "",
        "| Ingredient | sha256 | Seed | Its mean AUC (95% CI) | Soup minus it, paired (95% CI) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in ingredients:
        s = r["soup_minus"]
        diff = f"{s['diff_vs_second']:+.3f} ({s['diff_lo']:+.3f} to {s['diff_hi']:+.3f})" if s.get("diff_vs_second") is not None else "n/a"
        lines.append(f"| `{Path(r['folder']).as_posix()}` | `{r['sha256'][:12]}...` | {r['seed']} | {fmt_ci(r['ingredient'])} | {diff} |")
    lines += [f"| **this model (soup)** |  |  | **{fmt_ci(comparison['ours'])}** |  |", ""]
    lines += command_lines([command], "Exact command (after the ingredients' trainings below):") + [""]
    lines += ["## Training (each ingredient)", ""]
    if "pretrained" in d and "stage_epochs" in d:  # trained by ``cxrdemo train`` (its card data is in config.json)
        lines += ["Recipe of the first ingredient (the others differ only as their commands show):", "", *recipe_lines(d), "", *teacher_lines(d)]
    else:
        lines += ["The first ingredient's config.json records no training recipe; see each ingredient's own card.", ""]
    for r in ingredients:
        if r["commands"]:
            lines += command_lines(list(r["commands"]), f"Ingredient `{Path(r['folder']).as_posix()}`:") + [""]
    return "\n".join(lines + results_and_limits(d, report_md))


def teacher_lines(d: dict[str, Any]) -> list[str]:
    t = d.get("teacher")
    if not t:
        return []
    return [
        "Knowledge distillation (soft targets from a far better-trained model):",
        "",
        f"- teacher: {t['source']}",
        f"- licence: {t['licence']}; credit: {t['credit']}",
        f"- teacher rows: {t['rows']} images (`{t['file']}`); training images with teacher probabilities: "
        f"{t['train_images_with_teacher']} of {t['train_images']} (the other {t['train_images'] - t['train_images_with_teacher']} "
        f"use the labels alone); validation images with a teacher row: {t.get('val_images_with_teacher', 'n/a')} of {d['n_val']}",
        "- the teacher is not ground truth (NIH's labels are); validation, the chosen epoch and the thresholds use the labels only",
        "",
    ]


def fmt_ci(r: dict[str, Any] | None) -> str:
    if not r or r.get("mean_auc") is None:
        return "n/a"
    ci = f" (95% CI {r['lo']:.3f}-{r['hi']:.3f})" if r.get("lo") is not None else ""
    return f"{r['mean_auc']:.3f}{ci}"


def ci_lines(d: dict[str, Any]) -> list[str]:
    c = d.get("validation_ci")
    if not c:
        return []
    lines = [
        f"Mean AUC with a bootstrap interval ({c['n_resamples']} resamples of the validation images, seed {c['seed']}, "
        "percentile 95%; labels with positives and negatives; sklearn roc_auc_score):",
        "",
        "| Model | Images | Mean AUC (95% CI) |",
        "| --- | --- | --- |",
        f"| this model, all validation images | {c['ours']['n_images']} | {fmt_ci(c['ours'])} |",
    ]
    if c.get("subset_teacher"):
        so, st = c["subset_ours"], c["subset_teacher"]
        lines += [
            f"| this model, validation images with a teacher row | {so['n_images']} | {fmt_ci(so)} |",
            f"| teacher (reproduce-chexnet DenseNet-121), same images | {st['n_images']} | {fmt_ci(st)} |",
        ]
        if so.get("diff_vs_second") is not None:
            lines += ["", f"Paired difference, this model minus the teacher on the same images: {so['diff_vs_second']:+.3f} "
                      f"(95% CI {so['diff_lo']:+.3f} to {so['diff_hi']:+.3f})."]
    return lines + [""]


