"""Evaluation reports: CLN-style Markdown tables (with the paper's figures beside ours) and matplotlib plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .cln_reference import CLN_AUC, CLN_CLASSES, CLN_GRADCAM_MEAN_AT_0_1, CLN_IOU_ACCURACY
from .audit.maps import METRIC_NAMES
from .audit.result import AuditResult
from .evalresult import EvalResult
from .metrics import IOU_THRESHOLDS, threshold_key
from .formatting import fmt, fmt_ci, fmt_estimate  # noqa: F401  (report's table cells; re-exported)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: Sequence[str]) -> list[str]:
    return [_row(cells), _row(["---"] * len(cells))]


def box_counts(result: EvalResult) -> dict[str, int]:
    """Ground-truth boxes per box class."""
    counts = {c: 0 for c in result.box_classes}
    for m in result.model_matches:
        counts[m.label] = counts.get(m.label, 0) + 1
    return counts


def iou_table(result: EvalResult, ours_name: str = "ours") -> list[str]:
    """CLN Table 1 layout: per T, the paper's CLN rows then our model, CAM and prior boxes."""
    classes = list(CLN_CLASSES) if set(CLN_CLASSES) <= set(result.box_classes) else list(result.box_classes)
    lines = _header(["T(IoU)", "Method", *classes, "Mean of classes"])
    ours = [
        (f"{ours_name}: model boxes", result.iou_accuracy),
        (f"{ours_name}: {result.cam_method} boxes (>= {result.cam_threshold})", result.cam_iou_accuracy),
        (f"{ours_name}: prior boxes (baseline)", result.prior_iou_accuracy),
    ]
    for t in IOU_THRESHOLDS:
        key = threshold_key(t)
        if classes == list(CLN_CLASSES):
            for name, table in CLN_IOU_ACCURACY.items():
                vals = table[key]
                lines.append(_row([key, f"{name} (paper)", *[fmt(v, 2) for v in vals[:-1]], fmt(vals[-1])]))
        for name, table in ours:
            row = table[key]
            lines.append(_row([key, f"**{name}**", *[fmt(row.get(c), 2) for c in classes], fmt(row.get("mean"))]))
    return lines


def auc_table(result: EvalResult, ours_name: str = "ours") -> list[str]:
    """CLN Table 2 layout on the 8 box classes, the paper's rows beside ours and the label-prior baseline."""
    classes = list(CLN_CLASSES)
    lines = _header(["Method", *classes, "Mean (8)"])
    for name, vals in CLN_AUC.items():
        lines.append(_row([f"{name} (paper)", *[fmt(v, 2) for v in vals[:-1]], fmt(vals[-1])]))
    lines.append(_row(["label prior (constant score, baseline)", *["0.50"] * len(classes), "0.500"]))
    mine = [result.auc.get(c) for c in classes]
    defined = [v for v in mine if v is not None]
    mean8 = float(np.mean(defined)) if defined else None
    lines.append(_row([f"**{ours_name}**", *[fmt(v, 2) for v in mine], fmt(mean8)]))
    return lines


def full_auc_table(result: EvalResult, auc_ci: Mapping[str, Mapping[str, Any] | None] | None = None) -> list[str]:
    """Every class: positives, negatives and AUC (with its bootstrap 95 % CI when ``auc_ci`` is given), then the mean.

    When some label is uncertain (a NaN target, policy ``ignore``), an ``Uncertain (left out)`` column counts, per
    class, the images left out of that class's AUC.
    """
    with_ci = auc_ci is not None
    y = result.y_true if result.y_true is not None else np.zeros((0, len(result.classes)))
    unsure = np.isnan(y)
    with_unsure = bool(unsure.any())
    lines = _header(["Label", "Positives", "Negatives", *(["Uncertain (left out)"] if with_unsure else []), "AUC",
                     *(["95% CI"] if with_ci else []), "Label-prior baseline"])  # fmt: skip
    for i, c in enumerate(result.classes):
        pos, left = int(np.nansum(y[:, i])), int(unsure[:, i].sum())
        ci = [fmt_ci((auc_ci or {}).get(c))] if with_ci else []
        lines.append(_row([c, str(pos), str(len(y) - pos - left), *([str(left)] if with_unsure else []),
                           fmt(result.auc.get(c)), *ci, "0.500"]))  # fmt: skip
    mean_ci = [fmt_ci((auc_ci or {}).get("mean"))] if with_ci else []
    blank = ["", "", *([""] if with_unsure else [])]
    lines.append(_row(["**mean**", *blank, f"**{fmt(result.mean_auc)}**", *mean_ci, "0.500"]))
    return lines


def per_box_table(result: EvalResult) -> list[str]:
    """One row per ground-truth box: image, class and the best IoU of each kind of box."""
    lines = _header(["Image", "Class", "Model box IoU", f"{result.cam_method} box IoU", "Prior box IoU"])
    for m, c, p in zip(result.model_matches, result.cam_matches, result.prior_matches):
        lines.append(_row([m.image, m.label, fmt(m.iou), fmt(c.iou), fmt(p.iou)]))
    return lines


def report_markdown(
    result: EvalResult,
    title: str = "cxrdemo evaluation",
    figures: Sequence[str] = (),
    ours_name: str = "ours",
    notes: Sequence[str] = (),
    auc_ci: Mapping[str, Mapping[str, Any] | None] | None = None,
    sections: Sequence[str] = (),
    cam_methods: Sequence[str] = (),
    cache_words: str = "the --resume cache",
) -> str:
    """The whole ``report.md``.

    ``cam_methods``: every CAM method of the run (default: the result's first, ``cam_method``); ``cache_words``:
    where earlier images' results came from, in the words of the interface that ran it (the app has no --resume).

    ``notes`` (e.g. that the model saw some of the images) are printed under the title; ``auc_ci`` (label or
    ``"mean"`` -> estimate JSON) adds the AUCs' confidence intervals; ``sections`` (Markdown lines, e.g. the
    explanation audit's tables) go after CLN's tables, before the figures.
    """
    counts = box_counts(result)
    boxed = ", ".join(f"{c} {n}" for c, n in counts.items() if n) or "none"
    model = result.model
    lines = [
        f"# {title}",
        "",
        f"- model: `{model.get('architecture')}` from `{model.get('source')}` (revision `{model.get('revision')}`)",
        f"- images: {result.n_images}; ground-truth boxes: {result.n_boxes} ({boxed})",
        *(f"- **note:** {n}" for n in notes),
        f"- mean AUC over the {sum(v is not None for v in result.auc.values())} labels with positives and negatives: "
        f"**{fmt(result.mean_auc)}**"
        + (f" (95% CI {fmt_ci((auc_ci or {}).get('mean'))}, bootstrap over images)" if auc_ci else "")
        + " (label-prior baseline 0.500)",
        f"- CAM boxes: {', '.join(cam_methods or [result.cam_method])}, threshold {result.cam_threshold}/255, largest "
        "connected region" + (f" (CLN's tables below: {result.cam_method})" if len(cam_methods) > 1 else ""),
        f"- speed: {result.timings.get('images_per_second')} images/s end to end "
        f"(decode + preprocess + model + CAMs + every audit part asked for), "
        f"{result.timings.get('model_images_per_second')} images/s model only"
        + (f"; {result.timings['images_from_cache']} images' results came from {cache_words}"
           if result.timings.get("images_from_cache") else ""),
        "",
        "Few images and very few boxes: every number below has a wide confidence interval. An IoU-accuracy cell is "
        "the share of that class's ground-truth boxes matched above T, so with 1 or 2 boxes it can only be 0, 0.5 "
        "or 1. The CLN rows are the paper's figures on its own 880-image boxed test split, printed for orientation, "
        "not as a like-for-like comparison.",
        "",
        "## Classification (CLN Table 2 layout, the 8 box classes)",
        "",
        *auc_table(result, ours_name),
        "",
        "## Classification, all labels",
        "",
        *full_auc_table(result, auc_ci),
        "",
        "## Localisation: IoU accuracy (CLN Table 1 layout)",
        "",
        "A class's cell: the share of that class's ground-truth boxes whose best same-class IoU exceeds T(IoU). "
        "`Mean of classes`: the unweighted mean of the class cells (CLN's mean), not the share of all boxes. "
        "`-`: no ground-truth box of that class.",
        "",
        *iou_table(result, ours_name),
        "",
        "CLN section 3.4.3 (Grad-CAM on CLN-CheXNet's backbone, mean at T=0.1): "
        + ", ".join(f"threshold {k}: {v:.3f}" for k, v in CLN_GRADCAM_MEAN_AT_0_1.items())
        + ".",
        "",
    ]
    if result.model_matches and len(result.model_matches) <= 50:
        lines += ["## Every ground-truth box", "", *per_box_table(result), ""]
    lines += list(sections)
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ explanation audit
#: The metrics of the plausibility tables, in column order (display names: ``audit.maps.METRIC_NAMES``).
_TABLE_METRICS = ("pointing_game", "energy_in_box", "mask_iou_otsu", "mask_iou_127", "mask_iou_180", "cam_iou")


def _method(m: str) -> str:
    from .cams import is_class_agnostic, method_name

    return method_name(m) + (" (class-agnostic)" if is_class_agnostic(m) else "")


def _truth_note(doc: dict) -> list[str]:
    """One line on masks and readers when the ground truth has them (nothing for plain boxes)."""
    masks = int(doc.get("n_masks") or 0)
    if not masks:
        return []
    rule = doc.get("reader_rule", "per_reader")
    how = ("each reader's regions scored separately and averaged" if rule == "per_reader" else "every reader's regions united")
    return [
        "",
        f"{masks} of the {doc['n_boxes']} truths are masks (several regions of a class, several readers, or a "
        f"segmentation): the same metrics on the mask's pixels (cheXlocalize's hit and IoU), the box figures on "
        f"its bounding box; reader rule `{rule}`: {how}.",
    ]


def plausibility_tables(result: AuditResult) -> list[str]:
    """Per method (and per method and class): every map metric and CAM-box IoU accuracy, value [95% CI]."""
    doc = result.plausibility
    if not doc:
        return ["## Explanations: plausibility", "", "No ground-truth box among the images: nothing to localise.", ""]
    keys = list(_TABLE_METRICS)
    ts = ("0.1", "0.3", "0.5")
    lines = [
        "## Explanations: plausibility (does the map fall on the radiologist's box?)",
        "",
        f"{doc['n_boxes']} ground-truth boxes on {doc['n_images']} images; for each box, the map of the box's class "
        f"in original pixels. Pointing game: the map's maximum inside the box (tolerance "
        f"{doc['pointing_tolerance_px']:g} px); energy in box: the share of the map's mass inside it; mask IoU: the map "
        f"thresholded by Otsu, at 127 and at 180 of 255, against the box; CAM-box IoU: the box around the largest "
        f"region >= {doc['cam_threshold']}/255; IoU acc. @T: the share of boxes whose CAM-box IoU exceeds T. "
        "Each cell: mean over boxes [95% CI, 1,000 bootstrap resamples of images, seeded]. Higher is better.",
        *_truth_note(doc),
        "",
        *_header(["Method", *[METRIC_NAMES[k] for k in keys], *[f"IoU acc. @{t}" for t in ts]]),
    ]
    for m, entry in doc["methods"].items():
        cells = [fmt_estimate(entry[k]["overall"]) for k in keys] + [fmt_estimate(entry["cam_iou_accuracy"][t]["overall"]) for t in ts]
        lines.append(_row([f"**{_method(m)}**", *cells]))
    from .audit.interreader import reader_lines
    from .audit.verdict import reference_lines

    # the per-class table right under the overall one; then the reference levels (chance and centre map, then a
    # second radiologist), each under its own heading, so that no table sits under another section's heading
    lines += ["", "Per class (n = images with a box of the class):", ""]
    lines += _header(["Method", "Class", "n", *[METRIC_NAMES[k] for k in keys], "IoU acc. @0.1"])
    for m, entry in doc["methods"].items():
        for c, est in entry["pointing_game"]["per_class"].items():
            cells = [fmt_estimate(entry[k]["per_class"][c], 2) for k in keys]
            lines.append(_row([_method(m), c, str(est["n"]), *cells, fmt_estimate(entry["cam_iou_accuracy"]["0.1"]["per_class"][c], 2)]))
    lines += ["", *reference_lines(result.plausibility_reference, doc["methods"])]
    lines += reader_lines((result.plausibility_reference or {}).get("readers"), doc["methods"])
    return lines + [""]


def faithfulness_table(result: AuditResult) -> list[str]:
    """ROAD combined per method, mean [95% CI]."""
    doc = result.faithfulness
    if not doc:
        return []
    lines = [
        "## Explanations: faithfulness (ROAD)",
        "",
        f"ROAD combined (Rong et al. 2022) for the top-1 class of each of {doc['n_images']} images, percentiles "
        f"{', '.join(str(p) for p in doc['percentiles'])}: the mean of (LeRF - MoRF) / 2 in logit units. Positive: "
        "removing the pixels the map ranks highest hurts the class score more than removing the lowest-ranked ones "
        f"(higher is more faithful; 0 is no better than chance). Cost: "
        f"{result.evaluation.timings.get('faithfulness_seconds_per_image_and_method', '-')} s per image and method.",
        "",
        *_header(["Method", "ROAD combined [95% CI]", "images"]),
    ]
    for m, est in doc["methods"].items():
        lines.append(_row([_method(m), fmt_estimate(est), str(est["n"])]))
    return lines + [""]


def sanity_tables(result: AuditResult) -> list[str]:
    """The randomization cascade (Spearman and SSIM per step and method) and class sensitivity."""
    lines: list[str] = []
    doc = result.sanity
    if doc:
        methods = list(doc["methods"])
        lines += [
            "## Explanations: sanity (cascading randomization)",
            "",
            f"Adebayo et al. 2018 on {doc['n_images']} images: the class head, then the backbone's stages from the top, "
            "are re-initialised cumulatively; after each step, the similarity of the new map to the trained model's "
            f"map ({doc['spearman']} Spearman rank correlation, and SSIM), mean [95% CI]. A map that explains the model "
            "falls towards 0 as its parameters are destroyed; one that stays high shows the input, not the model. "
            f"Cost: {result.evaluation.timings.get('sanity_seconds_per_image_and_method', '-')} s per image and method "
            "(the cascade's forward passes are shared by the methods).",
            "",
        ]
        for what in ("spearman", "ssim"):
            lines += [f"{'Spearman' if what == 'spearman' else 'SSIM'}:", ""]
            lines += _header(["Step", *[_method(m) for m in methods]])
            for i, step in enumerate(doc["steps"]):
                lines.append(_row([step, *[fmt_estimate(doc["methods"][m][i][what], 2) for m in methods]]))
            lines.append("")
    sens = result.class_sensitivity
    if sens:
        lines += [
            "## Explanations: class sensitivity",
            "",
            f"Spearman rank correlation between the map of the top-1 class and the map of the lowest-ranked class of "
            f"the same image ({sens['n_images']} images), mean [95% CI]: 1 means the map ignores the class asked for.",
            "",
            *_header(["Method", "Spearman top-1 vs lowest [95% CI]", "undefined (constant map)"]),
        ]
        for m, est in sens["methods"].items():
            lines.append(_row([_method(m), fmt_estimate(est), f"{est.get('undefined', 0)} of {sens['n_images']}"]))
        lines += ["", *undefined_lines(sens)]
    return lines


#: Why a rank correlation can be undefined, for the reports and the page.
UNDEFINED_RANK = (
    "Undefined (shown as -, counted in the last column): a map that is constant (every pixel the same value, most "
    "often all zero) ranks no pixel above another, so no rank correlation exists. Grad-CAM and its variants give such "
    "maps for a class the model sees no evidence of: the class's gradient-weighted sum of the feature maps is "
    "negative everywhere and the final ReLU sets every pixel to 0. For the lowest-ranked class this is common and "
    "says the map is class-specific there; the mean is over the images where both maps are defined."
)


def undefined_lines(doc: Mapping[str, Any]) -> list[str]:
    """The explanation of undefined values when a table has any (else nothing)."""
    if any(int(est.get("undefined", 0) or 0) for est in doc.get("methods", {}).values() if isinstance(est, dict)):
        return [UNDEFINED_RANK, ""]
    return []


def baseline_tables(result: AuditResult) -> list[str]:
    """Per baseline: per-label AUC of both models on the same images, the difference with its paired CI."""
    lines: list[str] = []
    for doc in result.baseline or []:
        lines += [
            f"## Classification against a baseline: {doc['name']} ({doc['kind']})",
            "",
            f"On the {doc['n_common']} images both have (ours: {doc['n_ours']}, the baseline: {doc['n_baseline']}; "
            f"{doc['ours_without_baseline']} of ours have no baseline row). Difference = ours - baseline, with a "
            "paired bootstrap 95% CI (the same resampled images for both models).",
            "",
        ]
        if doc.get("common_seen_by_ours"):
            lines += [
                f"**{doc['common_seen_by_ours']} of these {doc['n_common']} images were in our model's training or "
                "validation split: our AUCs are optimistic here, this is not a fair comparison** "
                f"({result.options.get('unseen_hint') or 'add --unseen to skip them'}).",
                "",
            ]
        if "per_label" not in doc:
            lines += ["Fewer than 2 images in common: no comparison.", ""]
            continue
        lines += _header(["Label", "Ours AUC [95% CI]", "Baseline AUC [95% CI]", "Difference [95% CI]"])
        for label, cmp in doc["per_label"].items():
            lines.append(_row([label, fmt_estimate(cmp["auc_a"]), fmt_estimate(cmp["auc_b"]), fmt_estimate(cmp["difference"])]))
        mean = doc["mean"]
        lines.append(
            _row([f"**mean ({len(doc['labels_in_mean'])} labels)**", f"**{fmt_estimate(mean['auc_a'])}**",
                  f"**{fmt_estimate(mean['auc_b'])}**", f"**{fmt_estimate(mean['difference'])}**"])
        )  # fmt: skip
        lines.append("")
    return lines


def skipped_lines(result: AuditResult) -> list[str]:
    """What was left out, counted."""
    s = result.skipped
    if not s:
        return []
    return [
        "## Left out",
        "",
        f"- unreadable files: {s.get('unreadable', 0)} (listed with their reason in `skipped.csv`)",
        f"- images without a row in the label CSV: {s.get('no_label_row', 0)} (also in `skipped.csv`)",
        f"- label rows whose image is not in the folder: {s.get('label_rows_without_image', 0)} (counted, not an error)",
        f"- images the model had seen, left out (only unseen images asked for): {s.get('seen_by_model_dropped', 0)}",
        *(["- uncertain labels (-1), each image left out of that class's AUC only (it counts for every other class): "
           + ", ".join(f"{c} {n}" for c, n in s["uncertain_labels"].items())] if s.get("uncertain_labels") else []),
        "",
    ]


#: How many images the report's error table lists (report.json and gallery.html list every one).
ERROR_ROWS = 20


def detection_tables(doc: Mapping[str, Any] | None) -> list[str]:
    """A detector's section (:mod:`cxrdemo.audit.detection`): AP per class and mAP at IoU 0.5 and 0.4, IoU accuracy
    at T = 0.1..0.7, FROC, every figure ``value [95% CI]``, and the images with the most errors; nothing for a model
    that predicts no scored boxes."""
    if not doc:
        return []
    classes = list(doc["classes"])
    ious = list(doc["ap"])
    thr = doc["score_threshold"]
    boot = doc["bootstrap"]
    lines = [
        "## Detection: the detector's boxes against the ground-truth boxes",
        "",
        f"{doc['n_images']} images, {doc['n_truth']} ground-truth boxes, {doc['n_predicted']} predicted boxes of the "
        f"scored classes ({', '.join(classes)}; {doc.get('n_unscored', 0)} boxes of other labels not scored). Matching: "
        f"{doc['matching']}. AP: {doc['ap_definition']}; IoU 0.4 is the VinDr-CXR challenge's (PASCAL VOC 2010 mAP "
        "at IoU > 0.4), 0.5 PASCAL VOC's. `-`: the class has no ground-truth box (AP undefined, left out of the mAP). "
        f"95% CIs: {boot['n_resamples']} bootstrap resamples of the images (seed {boot['seed']}). Definitions: "
        "docs/audit.md.",
        "",
        *_header(["Class", "Ground-truth boxes", "Predicted boxes", *[f"AP@{t} [95% CI]" for t in ious]]),
    ]
    first = doc["ap"][ious[0]]
    for c in classes:
        lines.append(_row([c, str(first["n_truth"][c]), str(first["n_predicted"][c]), *[fmt_estimate(doc["ap"][t]["per_class"][c]) for t in ious]]))
    lines.append(_row([f"**mAP ({len(first['classes_in_mean'])} classes)**", str(sum(first["n_truth"].values())),
                       str(sum(first["n_predicted"].values())), *[f"**{fmt_estimate(doc['ap'][t]['mean'])}**" for t in ious]]))  # fmt: skip
    lines += [
        "",
        f"**IoU accuracy** (CLN Table 1's definition): per class, the share of its ground-truth boxes whose best "
        f"same-class box scored >= {thr:g} has IoU > T; `Mean of classes` unweighted, with its 95% CI.",
        "",
        *_header(["T(IoU)", *classes, "Mean of classes [95% CI]"]),
    ]
    for t, row in doc["iou_accuracy"].items():
        lines.append(_row([t, *[fmt(row[c]["value"], 2) for c in classes], fmt_estimate(row["mean"])]))
    rates = list(next(iter(doc["froc"].values()))["sensitivity"]) if doc["froc"] else []
    lines += [
        "",
        "**FROC**: sensitivity (ground-truth boxes found by a same-class box with IoU >= the threshold, each box "
        "matched once) at the lowest score cut with at most that many false boxes per image; the mean over the "
        "seven rates is the summary.",
        "",
        *_header(["IoU", *[f"{r} FP/image" for r in rates], "Mean"]),
    ]
    for t, f in doc["froc"].items():
        lines.append(_row([t, *[fmt_estimate(f["sensitivity"][r]) for r in rates], f"**{fmt_estimate(f['mean'])}**"]))
    errors = doc["errors"]["images"]
    lines += ["", f"**Errors** at score >= {thr:g} and IoU >= {doc['errors']['iou_threshold']:g}: images by missed "
              "findings, then by false boxes, then by the most confident false box"]  # fmt: skip
    if not errors:
        lines += ["", "No missed finding and no false box.", ""]
        return lines
    lines += ["", *_header(["Image", "Missed findings", "False boxes (class score)"])]
    for e in errors[:ERROR_ROWS]:
        missed = ", ".join(m["label"] for m in e["missed"]) or "-"
        false = ", ".join(f"{b['label']} {b['score']:.2f}" for b in e["false_boxes"]) or "-"
        lines.append(_row([e["image"], missed, false]))
    if len(errors) > ERROR_ROWS:
        lines.append(f"\n... and {len(errors) - ERROR_ROWS} more images with errors (report.json's `detection.errors`).")
    lines.append("")
    return lines


def audit_sections(result: AuditResult) -> list[str]:
    """The explanation audit's sections of ``report.md``."""
    return [
        *detection_tables(result.detection),
        *plausibility_tables(result),
        *faithfulness_table(result),
        *sanity_tables(result),
        *baseline_tables(result),
        *skipped_lines(result),
    ]


def plot_roc(result: EvalResult, path: str | Path) -> Path:
    """ROC curves, one panel per class (AUC in the title); classes without positives/negatives say so.

    The axes are padded a little and the curve is drawn above them, so a perfect curve (AUC 1.0, along the left
    and top edges) stays visible instead of hiding under the frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    classes = result.classes
    cols = 4
    rows = int(np.ceil(len(classes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    y = result.y_true
    pad = 0.03
    for i, ax in enumerate(axes.ravel()):
        if i >= len(classes):
            ax.axis("off")
            continue
        c = classes[i]
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--", zorder=1)
        auc = result.auc.get(c)
        if auc is not None and y is not None and result.scores is not None:
            known = ~np.isnan(y[:, i])  # an uncertain label (NaN) is left out of its class's curve
            fpr, tpr, _ = roc_curve(y[known, i].astype(int), result.scores[known, i])
            ax.plot(fpr, tpr, color="#0072B2", lw=1.8, zorder=5, clip_on=False)
            ax.set_title(f"{c}\nAUC {auc:.3f} (n+={int(y[known, i].sum())})", fontsize=9)
        else:
            ax.set_title(f"{c}\nAUC undefined", fontsize=9)
        ax.set_xlim(-pad, 1 + pad)
        ax.set_ylim(-pad, 1 + pad)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    fig.supxlabel("false positive rate")
    fig.supylabel("true positive rate")
    fig.suptitle(f"ROC per class ({result.n_images} images; mean AUC {fmt(result.mean_auc)})", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_iou_accuracy(result: EvalResult, path: str | Path) -> Path:
    """Mean-of-classes IoU accuracy against T(IoU) for model, CAM and prior boxes, with CLN's curves for reference.

    Our three series get distinct markers and dash patterns and a small horizontal offset each, so identical
    series (a box head still at its priors gives exactly the prior boxes' curve) stay visible side by side; the
    legend says which series coincide.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.array(IOU_THRESHOLDS)
    keys = [threshold_key(t) for t in ts]
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    series = [
        ("model boxes", result.iou_accuracy, "#0072B2", "o", "-"),
        (f"{result.cam_method} boxes", result.cam_iou_accuracy, "#D55E00", "s", "--"),
        ("prior boxes", result.prior_iou_accuracy, "#009E73", "^", ":"),
    ]
    values = {name: [table[k]["mean"] for k in keys] for name, table, *_ in series}
    offsets = (-0.008, 0.0, 0.008)
    for (name, _, colour, marker, ls), dx in zip(series, offsets):
        vals = values[name]
        if all(v is None for v in vals):
            continue
        same = [other for other, _, *_ in series if other != name and values[other] == vals]
        label = f"ours: {name}" + (f" (same as {', '.join(same)}; shifted sideways)" if same else "")
        ax.plot(
            ts + dx, [np.nan if v is None else v for v in vals], color=colour, marker=marker, ls=ls, lw=1.6,
            markersize=6, markerfacecolor="none" if same and name != series[0][0] else colour, label=label, zorder=4,
        )
    for (name, table), ls in zip(CLN_IOU_ACCURACY.items(), (":", "-.")):
        ax.plot(ts, [table[k][-1] for k in keys], color="#777777", ls=ls, lw=1.0, label=f"{name} (paper)", zorder=2)
    ax.set_xlabel("T(IoU)")
    ax.set_ylabel("IoU accuracy, mean of the classes")
    ax.set_ylim(-0.02, 1.04)
    ax.set_title(f"IoU accuracy ({result.n_boxes} ground-truth boxes)", fontsize=11)
    ax.legend(fontsize=7.5)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
