"""Verdicts: is a method's map on the radiologists' boxes more than chance, more than a centre bias? And honest
intervals: no CI from too few images.

For each method and metric, the per-box difference ``method - reference`` (the same boxes, so the comparison is
paired) is averaged, with a bootstrap 95 % CI that resamples images (:func:`cxrdemo.audit.stats.bootstrap_mean`).
The verdict against a reference is ``above`` when the whole CI is above 0, ``below`` when it is below, else
``not distinguishable``. When the boxes lie on fewer than :data:`MIN_IMAGES` images there is no CI and no verdict:
the report says "too few images for an interval / a verdict" and shows ``n``.

Why :data:`MIN_IMAGES` = 10: a percentile bootstrap interval of a mean is built from resamples of the ``n``
images, so its width tracks the sample's spread times ``sqrt((n - 1) / n) / sqrt(n)`` and it misses the 1.96
factor's t-correction (for n = 5 the 97.5 % t quantile is 2.78, 42 % wider than 1.96; for n = 10 it is 2.26, 15 %
wider); with n = 1 every resample is the same image and the interval has width 0 (``0.10 [0.10, 0.10]``). Below
10 images the nominal 95 % interval covers far less than 95 %, so none is shown.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .result import CaseRow
from .reference import REFERENCE_METRICS, REFERENCE_NAMES, REFERENCES
from .stats import bootstrap_mean

#: The fewest images behind a figure for it to get a CI, and behind a comparison for it to get a verdict.
MIN_IMAGES = 10
#: What a figure with fewer images says instead of an interval.
TOO_FEW = f"too few images for an interval (fewer than {MIN_IMAGES})"
#: The metrics the page's one-line verdict speaks of (both have an analytic chance level).
HEADLINE_METRICS: tuple[str, ...] = ("pointing_game", "energy_in_box")
_NAMES = {"pointing_game": "pointing game", "energy_in_box": "energy in box", "mask_iou_otsu": "mask IoU (Otsu)",
          "mask_iou_127": "mask IoU (127)", "mask_iou_180": "mask IoU (180)", "cam_iou": "CAM-box IoU"}  # fmt: skip
_REF_SHORT = {"uniform": "chance", "center": "the centre baseline"}


def is_estimate(doc: Any) -> bool:
    """Whether ``doc`` is an estimate's JSON (``value``, ``low``, ``high``, ``n``)."""
    return isinstance(doc, dict) and {"value", "low", "high", "n"} <= set(doc)


def withhold_intervals(doc: Any, min_n: int = MIN_IMAGES) -> Any:
    """``doc`` (any JSON) with the interval of every estimate resting on fewer than ``min_n`` units removed
    (``low``/``high`` ``None``, ``interval``: :data:`TOO_FEW`); changed in place and returned."""
    if is_estimate(doc):
        if doc["value"] is not None and int(doc["n"]) < min_n:
            doc["low"] = doc["high"] = None
            doc["interval"] = TOO_FEW
        return doc
    if isinstance(doc, dict):
        for value in doc.values():
            withhold_intervals(value, min_n)
    elif isinstance(doc, list):
        for value in doc:
            withhold_intervals(value, min_n)
    return doc


def call(difference: Mapping[str, Any]) -> str:
    """``above`` / ``below`` / ``not distinguishable`` from a difference's CI; ``too few images`` without one."""
    if difference.get("value") is None:
        return "undefined"
    if int(difference["n"]) < MIN_IMAGES or difference.get("low") is None:
        return "too few images"
    if difference["low"] > 0:
        return "above"
    if difference["high"] < 0:
        return "below"
    return "not distinguishable"


def reference_summary(refs: Mapping[str, list[dict[str, float]]], cases: Sequence[CaseRow], n_resamples: int, seed: int) -> dict[str, Any]:
    """``plausibility_reference``: ``{"uniform": {metric: mean}, "center": {metric: estimate with CI}, ...}``."""
    groups = [c.image for c in cases]
    out: dict[str, Any] = {"what": dict(REFERENCE_NAMES), "n_boxes": len(cases), "min_images_for_interval": MIN_IMAGES}
    for name in REFERENCES:
        values = refs[name]
        if name == "uniform":
            out[name] = {m: round(float(np.mean([v[m] for v in values])), 6) if values else None for m in REFERENCE_METRICS}
        else:
            out[name] = {
                m: bootstrap_mean([v[m] for v in values], groups, n_resamples=n_resamples, seed=seed).to_json() for m in REFERENCE_METRICS
            }
    return withhold_intervals(out)


def method_verdict(
    method: str, cases: Sequence[CaseRow], refs: Mapping[str, list[dict[str, float]]], n_resamples: int, seed: int
) -> dict[str, Any]:
    """``plausibility[method]["verdict"]``: per reference and metric the paired difference and its call, the counts,
    and the one line of :func:`verdict_line`. ``cases``: the method's cases in the same order as ``refs``'."""
    groups = [c.image for c in cases]
    n_images = len(set(groups))
    against: dict[str, Any] = {}
    for name in REFERENCES:
        against[name] = {}
        for m in REFERENCE_METRICS:
            ours = np.array([c.cam_iou if m == "cam_iou" else c.metrics[m] for c in cases], dtype=np.float64)
            theirs = np.array([v[m] for v in refs[name]], dtype=np.float64)
            diff = bootstrap_mean(ours - theirs, groups, n_resamples=n_resamples, seed=seed).to_json()
            withhold_intervals(diff)
            against[name][m] = {"reference": float(theirs.mean()) if theirs.size else None, "difference": diff, "verdict": call(diff)}
    doc = {"n_boxes": len(cases), "n_images": n_images, "min_images": MIN_IMAGES, "against": against,
           "difference": "method - reference, per box (paired); 95% CI resampling images"}  # fmt: skip
    doc["line"] = verdict_line(method, doc, {m: float(np.mean([c.cam_iou if m == "cam_iou" else c.metrics[m] for c in cases])) for m in HEADLINE_METRICS} if cases else {})
    return doc


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.3f}"


def _clause(value: float, name: str, entries: Mapping[str, Any]) -> str:
    """``energy in box 0.110: above chance (0.080; +0.030 [+0.010, +0.052]), below the centre baseline (...)``."""
    parts = []
    for ref in REFERENCES:
        e = entries[ref]
        d = e["difference"]
        ci = f" [{_signed(d['low'])}, {_signed(d['high'])}]" if d.get("low") is not None else ""
        word = {"above": "above", "below": "below", "not distinguishable": "not distinguishable from"}.get(e["verdict"], "vs")
        parts.append(f"{word} {_REF_SHORT[ref]} ({e['reference']:.3f}; difference {_signed(d['value'])}{ci})")
    return f"{name} {value:.3f}: " + ", ".join(parts)


def verdict_line(method: str, doc: Mapping[str, Any], headline: Mapping[str, float]) -> str:
    """One line per method: the verdict on the headline metrics against both references, and what it rests on."""
    from ..cams import method_name

    rests = f"{doc['n_boxes']} boxes on {doc['n_images']} images"
    if not doc["n_boxes"]:
        return f"{method_name(method)}: no ground-truth box, no verdict."
    if doc["n_images"] < MIN_IMAGES:
        values = ", ".join(f"{_NAMES[m]} {v:.3f} (chance {doc['against']['uniform'][m]['reference']:.3f})" for m, v in headline.items())
        return (f"{method_name(method)}: no verdict: {rests} are too few (at least {MIN_IMAGES} images are needed for "
                f"an interval); {values}.")  # fmt: skip
    clauses = [_clause(v, _NAMES[m], {r: doc["against"][r][m] for r in REFERENCES}) for m, v in headline.items()]
    return f"{method_name(method)} ({rests}): " + "; ".join(clauses) + "."


def reference_lines(doc: Mapping[str, Any] | None, methods: Mapping[str, Any]) -> list[str]:
    """report.md's (and the page's) references table and verdict lines."""
    if not doc:
        return []
    from ..formatting import fmt, fmt_estimate

    lines = [
        "### References and verdicts",
        "",
        "The same metrics, by the same code on the same boxes, for two maps that ignore the image: a uniformly random "
        "map (chance: for the pointing game and the energy in box, the box's share of the image's pixels) and a fixed "
        "centred map (centre bias). A verdict compares the method with each reference box by box (paired difference, "
        f"95% CI resampling images): above, below, or not distinguishable; none from fewer than {MIN_IMAGES} images.",
        "",
        "| Reference | " + " | ".join(_NAMES[m] for m in REFERENCE_METRICS) + " |",
        "|---" * (1 + len(REFERENCE_METRICS)) + "|",
        "| " + REFERENCE_NAMES["uniform"] + " | " + " | ".join(fmt(doc["uniform"][m]) for m in REFERENCE_METRICS) + " |",
        "| " + REFERENCE_NAMES["center"] + " | " + " | ".join(fmt_estimate(doc["center"][m]) for m in REFERENCE_METRICS) + " |",
        "",
    ]
    for entry in methods.values():
        if entry.get("verdict"):
            lines.append(f"- **{entry['verdict']['line']}**")
    return lines + [""]
