"""Evaluation reports: CLN-style Markdown tables (with the paper's figures beside ours) and matplotlib plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .cln_reference import CLN_AUC, CLN_CLASSES, CLN_GRADCAM_MEAN_AT_0_1, CLN_IOU_ACCURACY
from .metrics import IOU_THRESHOLDS, threshold_key

if TYPE_CHECKING:  # pragma: no cover
    from .evaluate import EvalResult


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table; ``-`` when undefined."""
    return "-" if value is None else f"{value:.{digits}f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(cells: Sequence[str]) -> list[str]:
    return [_row(cells), _row(["---"] * len(cells))]


def box_counts(result: "EvalResult") -> dict[str, int]:
    """Ground-truth boxes per box class."""
    counts = {c: 0 for c in result.box_classes}
    for m in result.model_matches:
        counts[m.label] = counts.get(m.label, 0) + 1
    return counts


def iou_table(result: "EvalResult", ours_name: str = "ours") -> list[str]:
    """CLN Table 1 layout: per T, the paper's CLN rows then our model, CAM and prior boxes."""
    classes = list(CLN_CLASSES) if set(CLN_CLASSES) <= set(result.box_classes) else list(result.box_classes)
    lines = _header(["T(IoU)", "Method", *classes, "Mean"])
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


def auc_table(result: "EvalResult", ours_name: str = "ours") -> list[str]:
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


def full_auc_table(result: "EvalResult") -> list[str]:
    """Every class: positives, negatives and AUC, then the mean."""
    lines = _header(["Label", "Positives", "Negatives", "AUC", "Label-prior baseline"])
    y = result.y_true if result.y_true is not None else np.zeros((0, len(result.classes)))
    for i, c in enumerate(result.classes):
        pos = int(y[:, i].sum()) if len(y) else 0
        lines.append(_row([c, str(pos), str(len(y) - pos), fmt(result.auc.get(c)), "0.500"]))
    lines.append(_row(["**mean**", "", "", f"**{fmt(result.mean_auc)}**", "0.500"]))
    return lines


def per_box_table(result: "EvalResult") -> list[str]:
    """One row per ground-truth box: image, class and the best IoU of each kind of box."""
    lines = _header(["Image", "Class", "Model box IoU", f"{result.cam_method} box IoU", "Prior box IoU"])
    for m, c, p in zip(result.model_matches, result.cam_matches, result.prior_matches):
        lines.append(_row([m.image, m.label, fmt(m.iou), fmt(c.iou), fmt(p.iou)]))
    return lines


def report_markdown(
    result: "EvalResult",
    title: str = "cxrdemo evaluation",
    figures: Sequence[str] = (),
    ours_name: str = "ours",
    notes: Sequence[str] = (),
) -> str:
    """The whole ``report.md``; ``notes`` (e.g. that the model saw some of the images) are printed under the title."""
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
        f"**{fmt(result.mean_auc)}** (label-prior baseline 0.500)",
        f"- CAM boxes: {result.cam_method}, threshold {result.cam_threshold}/255, largest connected region",
        f"- speed: {result.timings.get('images_per_second')} images/s end to end "
        f"(decode + preprocess + model + CAM), {result.timings.get('model_images_per_second')} images/s model only",
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
        *full_auc_table(result),
        "",
        "## Localisation: IoU accuracy (CLN Table 1 layout)",
        "",
        "Share of ground-truth boxes whose best same-class IoU exceeds T(IoU). `-`: no ground-truth box of that class.",
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
    for fig in figures:
        lines += [f"![{fig}]({fig})", ""]
    return "\n".join(lines)


def plot_roc(result: "EvalResult", path: str | Path) -> Path:
    """ROC curves, one panel per class (AUC in the title); classes without positives/negatives say so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    classes = result.classes
    cols = 4
    rows = int(np.ceil(len(classes) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    y = result.y_true
    for i, ax in enumerate(axes.ravel()):
        if i >= len(classes):
            ax.axis("off")
            continue
        c = classes[i]
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--")
        auc = result.auc.get(c)
        if auc is not None and y is not None and result.scores is not None:
            fpr, tpr, _ = roc_curve(y[:, i].astype(int), result.scores[:, i])
            ax.plot(fpr, tpr, color="#0072B2", lw=1.6)
            ax.set_title(f"{c}\nAUC {auc:.3f} (n+={int(y[:, i].sum())})", fontsize=9)
        else:
            ax.set_title(f"{c}\nAUC undefined", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    fig.supxlabel("false positive rate")
    fig.supylabel("true positive rate")
    fig.suptitle(f"ROC per class ({result.n_images} images; mean AUC {fmt(result.mean_auc)})", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_iou_accuracy(result: "EvalResult", path: str | Path) -> Path:
    """Mean IoU accuracy against T(IoU) for model, CAM and prior boxes, with CLN's curves for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = list(IOU_THRESHOLDS)
    keys = [threshold_key(t) for t in ts]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = [
        ("model boxes", result.iou_accuracy, "#0072B2", "o"),
        (f"{result.cam_method} boxes", result.cam_iou_accuracy, "#D55E00", "s"),
        ("prior boxes", result.prior_iou_accuracy, "#009E73", "^"),
    ]
    for name, table, colour, marker in series:
        vals = [table[k]["mean"] for k in keys]
        if any(v is not None for v in vals):
            ax.plot(ts, [np.nan if v is None else v for v in vals], color=colour, marker=marker, label=f"ours: {name}")
    for (name, table), ls in zip(CLN_IOU_ACCURACY.items(), (":", "-.")):
        ax.plot(ts, [table[k][-1] for k in keys], color="#777777", ls=ls, label=f"{name} (paper)")
    ax.set_xlabel("T(IoU)")
    ax.set_ylabel("mean IoU accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"IoU accuracy ({result.n_boxes} ground-truth boxes)", fontsize=11)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
