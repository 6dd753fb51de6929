"""The files of an audit run in ``--out``: reports, CSVs, plots and the gallery.

- ``report.json``: :meth:`AuditResult.to_json` (today's keys, then plausibility, faithfulness, sanity,
  class_sensitivity, baseline, skipped);
- ``report.md``: CLN's tables, then the audit's tables, every figure with its 95 % CI;
- ``predictions.csv``: every image, ``Image Index`` + ``prob_<Label>`` in class order (``--baseline-predictions``
  reads it back); ``cases.csv``: one row per ground-truth box and method; ``skipped.csv``: file, reason;
- plots: ``roc.png``, ``iou_accuracy.png``, ``plausibility.png`` (metric bars with CI whiskers per method),
  ``sanity.png`` (randomization curves), ``auc_vs_<baseline>.png`` (per-label AUC beside the baseline's),
  ``froc.png`` (a detector's FROC curves);
- ``gallery.html`` with its pictures in ``gallery/``.

:func:`resolve_out` keeps outputs out of the repository: they hold thumbnails of radiographs.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .result import AuditResult
from .maps import MAP_METRICS, METRIC_NAMES

#: Colours per method (Okabe-Ito), in the order the methods were asked for.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
#: The default output folder's name (under the current directory).
DEFAULT_OUT = "cxrdemo-evaluation"


def repository_root() -> Path | None:
    """The git checkout this package runs from, if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / ".git").exists() else None


def resolve_out(out: str | Path | None, cwd: str | Path | None = None) -> Path:
    """The output folder: ``out``, or ``./cxrdemo-evaluation``; never inside this package's repository.

    Raises:
        InputError: the folder would lie inside the repository (outputs hold radiograph thumbnails), or no ``out``
            was given while the current directory is inside it.
    """
    here = Path(cwd or Path.cwd()).resolve()
    repo = repository_root()
    if out is None:
        if repo is not None and (here == repo or repo in here.parents):
            raise InputError(
                f"the current directory {here} is inside the cxrdemo repository: give --out DIR outside it "
                "(the outputs include radiograph thumbnails, which must not land in the repository)"
            )
        return here / DEFAULT_OUT
    path = Path(out).expanduser()
    path = (here / path if not path.is_absolute() else path).resolve()
    if repo is not None and (path == repo or repo in path.parents):
        raise InputError(f"--out {out} lies inside the cxrdemo repository {repo}; give a folder outside it (the outputs include radiograph thumbnails)")
    return path


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` and numpy scalars as Python numbers and booleans (standard
    JSON that any client parses): the one cleaner of ``report.json``, for the file and for the app's ``audit`` API."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ------------------------------------------------------------------------------------------------------ CSVs
def write_cases(path: Path, result: AuditResult) -> Path:
    """``cases.csv``: one row per ground-truth truth (box or mask of one class on one image) and method; ``region``
    says which (a mask's ``x1..y2`` is its bounding box), ``n_readers`` how many readers' figures were averaged."""
    head = ["image", "class", "box_index", "x1", "y1", "x2", "y2", "probability", "model_iou", "prior_iou", "method", "cam_iou",
            *MAP_METRICS, "model_box", "cam_box", "thumbnail", "region", "n_readers"]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(head)
        for c in result.cases:
            w.writerow([
                c.image, c.label, c.box_index, *c.box, round(c.probability, 6), "" if c.model_iou is None else round(c.model_iou, 6), round(c.prior_iou, 6),
                c.method, round(c.cam_iou, 6), *[round(c.metrics[m], 6) for m in MAP_METRICS],
                " ".join(str(v) for v in c.model_box or []), " ".join(str(v) for v in c.cam_box or []), c.thumbnail,
                c.region, c.n_readers,
            ])  # fmt: skip
    return path


def write_skipped(path: Path, result: AuditResult) -> Path:
    """``skipped.csv``: file, one-line reason (a header only when nothing was skipped)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(["file", "reason"])
        for s in result.skipped_files:
            w.writerow([s.file, " ".join(s.reason.split())])
    return path


# ----------------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(est: dict[str, Any] | None) -> tuple[float, float, float]:
    """value, lower and upper whisker lengths (NaN-safe)."""
    if not est or est.get("value") is None:
        return np.nan, 0.0, 0.0
    v = est["value"]
    lo = v - est["low"] if est.get("low") is not None else 0.0
    hi = est["high"] - v if est.get("high") is not None else 0.0
    return v, max(lo, 0.0), max(hi, 0.0)


def _bars(ax, groups: Sequence[str], series: dict[str, list[dict | None]], colours: dict[str, str]) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (name, ests) in enumerate(series.items()):
        vals = np.array([_err(e) for e in ests]).reshape(-1, 3)
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, vals[:, 0], width * 0.92, color=colours[name], label=name, zorder=3)
        ax.errorbar(pos, vals[:, 0], yerr=[vals[:, 1], vals[:, 2]], fmt="none", ecolor="#222222", elinewidth=1, capsize=2.5, zorder=4)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, fontsize=8.5)
    ax.grid(axis="y", alpha=0.3, zorder=0)


def plot_plausibility(result: AuditResult, path: Path) -> Path | None:
    """Bars per metric and method with 95 % CI whiskers; ROAD and class sensitivity in their own panels."""
    from ..cams import method_name

    doc = result.plausibility
    if not doc:
        return None
    plt = _plt()
    methods = list(doc["methods"])
    colours = {method_name(m): PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    # the display names, broken after their first word to fit under a bar
    keys = [(k, METRIC_NAMES[k].replace(" ", "\n", 1)) for k in (*MAP_METRICS, "cam_iou")]
    extra = [d for d in (result.faithfulness, result.class_sensitivity) if d]
    fig, axes = plt.subplots(1, 1 + len(extra), figsize=(10.5 + 2.6 * len(extra), 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": [5] + [1.3] * len(extra)})  # fmt: skip
    ax = axes[0, 0]
    series = {method_name(m): [doc["methods"][m][k]["overall"] for k, _ in keys] + [doc["methods"][m]["cam_iou_accuracy"]["0.1"]["overall"]] for m in methods}
    _bars(ax, [t for _, t in keys] + ["IoU acc.\n@0.1"], series, colours)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean over boxes (95% CI)")
    ax.set_title(f"Plausibility: {doc['n_boxes']} boxes on {doc['n_images']} images (higher is better)", fontsize=10)
    ax.legend(fontsize=8, ncol=min(4, len(methods)), loc="upper right")
    for k, d in enumerate(extra, start=1):
        a = axes[0, k]
        ests = {method_name(m): [d["methods"].get(m)] for m in methods}
        _bars(a, [""], ests, colours)
        a.axhline(0, color="#444444", lw=0.8)
        if d is result.faithfulness:
            a.set_title(f"ROAD combined\n({d['n_images']} images; higher = faithful)", fontsize=9)
            a.set_ylabel("logit units")
        else:
            a.set_title("Class sensitivity: Spearman\ntop-1 vs lowest class (lower = better)", fontsize=9)
            a.set_ylim(-1.05, 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sanity(result: AuditResult, path: Path) -> Path | None:
    """The randomization curves: similarity to the trained map per cascade step, per method, 95 % CI band."""
    from ..cams import method_name

    doc = result.sanity
    if not doc or not doc.get("n_images"):
        return None
    plt = _plt()
    steps = doc["steps"]
    x = np.arange(len(steps))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharex=True)
    for ax, what, title in zip(axes, ("spearman", "ssim"), (f"{doc['spearman'].capitalize()} Spearman rank correlation", "SSIM")):
        for i, (m, rows) in enumerate(doc["methods"].items()):
            v = np.array([np.nan if r[what]["value"] is None else r[what]["value"] for r in rows], dtype=float)
            lo = np.array([np.nan if r[what]["low"] is None else r[what]["low"] for r in rows], dtype=float)
            hi = np.array([np.nan if r[what]["high"] is None else r[what]["high"] for r in rows], dtype=float)
            c = PALETTE[i % len(PALETTE)]
            ax.plot(x, v, marker="os^Dv<>"[i % 7], color=c, label=method_name(m), lw=1.6, zorder=3)
            ax.fill_between(x, lo, hi, color=c, alpha=0.15, lw=0, zorder=2)
        ax.set_xticks(x)
        ax.set_xticklabels(steps, rotation=40, ha="right", fontsize=8)
        ax.set_ylim(-0.05 if what == "spearman" else min(-0.05, ax.get_ylim()[0]), 1.05)
        ax.axhline(0, color="#777777", lw=0.7)
        ax.set_title(f"{title} to the trained model's map", fontsize=10)
        ax.set_xlabel("cumulative randomization (top of the network first)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Cascading randomization on {doc['n_images']} images: a faithful map falls towards 0 (mean, 95% CI band)", fontsize=10.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_froc(result: AuditResult, path: Path) -> Path | None:
    """A detector's FROC curves (sensitivity against false boxes per image, log axis), one per IoU threshold, with
    the sensitivities at the report's rates marked (:mod:`cxrdemo.audit.detection`)."""
    doc = result.detection
    if not doc or not doc.get("froc") or not doc.get("n_truth"):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (key, f) in enumerate(doc["froc"].items()):
        curve = np.array(f["curve"], dtype=float).reshape(-1, 2)
        colour = PALETTE[i % len(PALETTE)]
        x = np.clip(curve[:, 0], 1 / 64, None)  # a log axis has no 0: the "no false box" points sit at 1/64
        ax.step(x, curve[:, 1], where="post", color=colour, lw=1.6, label=f"IoU >= {key} (mean {f['mean']['value']:.3f})")
        rates = [1 / int(k[2:]) if k.startswith("1/") else float(k) for k in f["sensitivity"]]
        vals = [e["value"] for e in f["sensitivity"].values()]
        ax.plot(rates, vals, "o", color=colour, ms=4)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1 / 10, 10)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false boxes per image")
    ax.set_ylabel("sensitivity (ground-truth boxes found)")
    ax.set_title(f"FROC: {doc['n_truth']} boxes on {doc['n_images']} images", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_baseline(doc: dict[str, Any], path: Path) -> Path | None:
    """Per-label AUC of ours beside the baseline's (CI whiskers), and the paired difference with its CI."""
    if "per_label" not in doc:
        return None
    plt = _plt()
    labels = [lab for lab, c in doc["per_label"].items() if c["auc_a"]["value"] is not None] + ["mean"]
    rows = [doc["per_label"][lab] if lab != "mean" else doc["mean"] for lab in labels]
    y = np.arange(len(labels))[::-1]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.42 * len(labels) + 1.6), sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    for k, (key, name, colour) in enumerate((("auc_a", "ours", "#0072B2"), ("auc_b", doc["name"], "#999999"))):
        vals = np.array([_err(r[key]) for r in rows])
        pos = y + (0.2 if k == 0 else -0.2)
        a.barh(pos, vals[:, 0], 0.38, color=colour, label=name, zorder=3)
        a.errorbar(vals[:, 0], pos, xerr=[vals[:, 1], vals[:, 2]], fmt="none", ecolor="#222222", capsize=2, elinewidth=1, zorder=4)
    a.axvline(0.5, color="#777777", ls="--", lw=0.8)
    a.set_xlim(0.3, 1.02)
    a.set_yticks(y)
    a.set_yticklabels(labels, fontsize=8.5)
    a.get_yticklabels()[-1].set_fontweight("bold")
    for ax in (a, b):
        ax.axhline(0.5, color="#444444", lw=0.8)  # the mean's row is set apart
    a.set_xlabel("ROC AUC (95% CI)")
    a.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    a.grid(axis="x", alpha=0.3)
    d = np.array([_err(r["difference"]) for r in rows])
    b.errorbar(d[:, 0], y, xerr=[d[:, 1], d[:, 2]], fmt="o", color="#D55E00", ecolor="#D55E00", capsize=3)
    b.axvline(0, color="#444444", lw=0.9)
    b.set_xlabel("ours - baseline (paired 95% CI)")
    b.grid(axis="x", alpha=0.3)
    seen = doc.get("common_seen_by_ours") or 0
    note = f"\n({seen} of them in our model's training/validation split: ours is optimistic)" if seen else ""
    fig.suptitle(f"Per-label AUC on the {doc['n_common']} images both have: ours vs {doc['name']}{note}", fontsize=10.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------- all
def write_outputs(result: AuditResult, out: str | Path, *, plots: bool = True, gallery: bool = True, title: str = "cxrdemo evaluation") -> Path:
    """Write every output of ``result`` into ``out`` (see the module doc); returns the folder."""
    from ..report import audit_sections, plot_iou_accuracy, plot_roc, report_markdown
    from .baseline import write_predictions

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev = result.evaluation
    (out / "report.json").write_text(json.dumps(strict_json(result.to_json()), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    write_predictions(out / "predictions.csv", ev.names, ev.scores if ev.scores is not None else np.zeros((0, len(ev.classes))), ev.classes)
    write_cases(out / "cases.csv", result)
    write_skipped(out / "skipped.csv", result)
    figures: list[str] = []
    if plots:
        figures = [plot_roc(ev, out / "roc.png").name, plot_iou_accuracy(ev, out / "iou_accuracy.png").name]
        for made in (plot_plausibility(result, out / "plausibility.png"), plot_sanity(result, out / "sanity.png"), plot_froc(result, out / "froc.png")):
            if made is not None:
                figures.append(made.name)
        for doc in result.baseline or []:
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(doc["name"])).stem).strip("-") or doc["kind"]
            made = plot_baseline(doc, out / f"auc_vs_{stem}.png")
            if made is not None:
                figures.append(made.name)
    sections = audit_sections(result)
    if gallery and (result.cases or result.detection):
        from .gallery import write_gallery

        write_gallery(out, result)
        sections += ["Every boxed case, with its pictures and numbers, sortable: [gallery.html](gallery.html).", ""]
    words = str((result.options or {}).get("cache_words") or "the --resume cache")
    text = report_markdown(ev, title=title, figures=figures, notes=result.notes, auc_ci=result.auc_ci or None,
                           sections=sections, cam_methods=result.methods, cache_words=words)  # fmt: skip
    (out / "report.md").write_text(text, encoding="utf-8")
    return out
