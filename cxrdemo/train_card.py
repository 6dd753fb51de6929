"""The training part of a model card: data, split, recipe, teacher, validation figures with their CIs."""

from __future__ import annotations

from typing import Any




def training_card_body(info: dict[str, Any], report_md: str) -> str:
    """Model-card body: data, recipe, exact command, seed, time, validation numbers, limitations."""
    d = info
    lines = [
        "## Training",
        "",
        f"- data: NIH ChestX-ray14 radiographs, `{d['images']}` ({d['n_images']} labelled images of {d['n_patients']} patients; "
        f"{d['n_boxed']} images carry {d['n_boxes']} radiologist boxes), labels: `{d['labels']}` (NIH's Data_Entry_2017_v2020.csv "
        f"format), boxes: `{d['boxes']}` (NIH's BBox_List_2017.csv format)",
        f"- split: patient-wise, stratified (seed {d['seed']}, validation fraction {d['val_fraction']}): "
        f"{d['n_train']} training images ({d['n_train_boxes']} boxes), {d['n_val']} validation images ({d['n_val_boxes']} boxes); "
        "no patient on both sides; their names are in `data_splits.json` (cxrdemo flags them when it analyses one)",
        f"- starting weights: {d['pretrained']}",
        f"- recipe: stage 1 classify ({d['stage_epochs'].get('classify', 0)} epochs run, best epoch {d['best_epoch'].get('classify')}), "
        f"stage 2 joint ({d['stage_epochs'].get('joint', 0)} epochs run, best epoch {d['best_epoch'].get('joint')}; 0 = stage-1 model with prior boxes); "
        f"lambda {d['lambda']}, box loss {d['box_loss']}, input {d['input_size']} px, batch {d['batch_size']}, "
        f"AdamW lr {d['lr']} (heads) / {d['backbone_lr']} (backbone), first {d['freeze']} backbone stages frozen, "
        + (f"stage-1 weights: exponential moving average (decay {d['ema']}), " if d.get("ema") else "")
        + "augmentation: small affine + brightness/contrast, no flip"
        + (
            f"; classification loss {d['teacher']['distill_weight']} x BCE against the teacher's probabilities + "
            f"{1 - d['teacher']['distill_weight']:g} x weighted BCE against the labels on images with a teacher row "
            f"(temperature {d['teacher']['distill_temperature']}), weighted BCE alone on the others"
            if d.get("teacher") else ""
        ),
        "- decision thresholds: per class on validation, maximising Youden's J",
        "- prior boxes: per-class mean training box"
        + (f"; no training box for {', '.join(d['prior_fallback'])}: the mean over all training boxes is used" if d["prior_fallback"] else ""),
        f"- seed: {d['seed']}; device: {d['device']} ({d['threads']} threads"
        + (f" in each of {d['processes']} DistributedDataParallel processes" if d.get("processes", 1) > 1 else "")
        + f"); training time: {d['train_minutes']:.1f} min; "
        f"finished {d['finished']}",
        f"- software: python {d['python']}, torch {d['torch']}, cxrdemo train",
        "",
        *teacher_lines(d),
        "Exact command:" if len(d["commands"]) == 1 else "Exact commands (the run was stopped and resumed from its checkpoint with `--resume`):",
        "",
        "```",
        *d["commands"],
        "```",
        "",
        "## Validation results",
        "",
        f"Measured with `cxrdemo evaluate` on the validation split ({d['n_val']} images, {d['n_val_boxes']} ground-truth boxes). "
        "The validation split chose the best epoch and the decision thresholds, so these numbers are optimistic; a "
        "separate holdout judges the model.",
        "",
    ]
    lines += ci_lines(d)
    body = report_md.split("\n", 1)[1] if report_md.startswith("# ") else report_md
    lines += [body.replace("\n## ", "\n### ").strip(), ""]
    lines += [
        "## Limitations",
        "",
        f"- Trained on only {d['n_train']} radiographs (NIH-scale models see ~100k). "
        "AUCs per label rest on a handful of validation positives (see the table) and move by several points with a different split.",
        f"- Very few radiologist boxes ({d['n_boxes']} in all, {d['n_train_boxes']} for training, {d['n_val_boxes']} for validation): the box head "
        "barely moves from the prior boxes, and the IoU-accuracy figures above are anecdotes, not estimates.",
        "- NIH labels were mined from reports by NLP and are noisy; the images come from one hospital.",
        "- Research and teaching use only. Not a medical device; not for diagnosis or triage.",
    ]
    return "\n".join(lines)


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


