"""The third reference level: how well the radiologists agree with each other, and how a map compares with that.

Chance (a uniformly random map) and the centre bias (a fixed centred map) say what a map that ignores the image
scores; neither says how high a map could reasonably score. Where a data set has two or more readers on the same
images (VinDr-CXR's three radiologists per training image), a second radiologist is that ceiling: on every
(image, class) that at least two readers marked, :func:`cxrdemo.audit.regions.reader_agreement` measures

- ``pointing_game``: does one reader's centre (the centre of mass of its box or mask) fall in the other's region
  (every ordered pair of readers, averaged); the human counterpart of the map's pointing game;
- ``energy_in_box``: the share of one reader's region inside the other's (ordered pairs); the counterpart of the
  map's energy in the region, the reader's region read as a uniform map;
- ``iou``: the IoU of two readers' regions (unordered pairs); the counterpart of the binarised map's mask IoU
  (Otsu, cheXlocalize's default threshold).

Each is a mean over the (image, class) pairs with a bootstrap 95 % CI resampling images. A method is compared with
it on the same (image, class) pairs, paired: ``method - readers``, its CI resampling images, and the call
``above`` / ``below`` / ``not distinguishable`` (:func:`cxrdemo.audit.verdict.call`): "as well as a second
radiologist" when not distinguishable. The method's value on a pair is the figure of its case for that class on
that image: under the ``per_reader`` rule (the default) the mean over readers of the map scored against each one,
like for like with one reader scored against another; under ``union`` the map is scored against every reader's
regions at once, a larger target, which the report says.

Without two readers on any image the reference is unavailable and the report says why.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .regions import AGREEMENT_METRICS
from .result import CaseRow
from .stats import bootstrap_mean
from .verdict import MIN_IMAGES, call, withhold_intervals

#: How the page and the report name the reference.
READERS_NAME = "a second radiologist (inter-reader agreement)"
#: How each agreement metric is named.
AGREEMENT_NAMES: dict[str, str] = {
    "pointing_game": "pointing game (a reader's centre in another's region)",
    "energy_in_box": "share of a reader's region in another's",
    "iou": "IoU of two readers' regions",
}
_METRIC_SHORT = {"pointing_game": "pointing game", "energy_in_box": "energy in region", "mask_iou_otsu": "mask IoU (Otsu)"}

#: One (image, class) agreement: ``(image, class, {metric: value, "n_readers": k})``.
Agreement = tuple[str, str, Mapping[str, float]]


def unavailable_reason(agreements: Sequence[Agreement], reader_ids: int | None = None) -> str | None:
    """Why there is no inter-reader reference (``None`` when there is one)."""
    if agreements:
        return None
    if reader_ids == 0:
        return "the ground truth names no reader (e.g. NIH's box list keeps none), so no two radiologists can be compared"
    return "no image has regions of the same class from two or more readers"


def reader_reference(
    agreements: Sequence[Agreement], rule: str, n_resamples: int, seed: int, reader_ids: int | None = None
) -> dict[str, Any]:
    """``plausibility_reference["readers"]``: per metric of :data:`AGREEMENT_METRICS` the overall and per-class mean
    with its CI, the counts, the rule; or ``{"available": False, "reason": ...}``."""
    reason = unavailable_reason(agreements, reader_ids)
    doc: dict[str, Any] = {"what": READERS_NAME, "available": reason is None, "reason": reason, "reader_rule": rule}
    if reason is not None:
        return doc
    groups = [a[0] for a in agreements]
    doc.update({
        "n_pairs": len(agreements), "n_images": len(set(groups)),
        "readers_per_pair": round(float(np.mean([a[2]["n_readers"] for a in agreements])), 3),
        "unit": "(image, class) marked by at least two readers; the CIs resample images",
        "names": dict(AGREEMENT_NAMES), "compared_with": dict(AGREEMENT_METRICS), "metrics": {},
    })  # fmt: skip
    for m in AGREEMENT_METRICS:
        entry: dict[str, Any] = {"overall": bootstrap_mean([a[2][m] for a in agreements], groups, n_resamples=n_resamples, seed=seed).to_json(), "per_class": {}}
        for label in dict.fromkeys(a[1] for a in agreements):
            sub = [a for a in agreements if a[1] == label]
            entry["per_class"][label] = bootstrap_mean([a[2][m] for a in sub], [a[0] for a in sub], n_resamples=n_resamples, seed=seed).to_json()
        doc["metrics"][m] = entry
    return withhold_intervals(doc)


def reader_verdict(method: str, cases: Sequence[CaseRow], agreements: Sequence[Agreement], rule: str, n_resamples: int, seed: int) -> dict[str, Any]:
    """``plausibility[method]["verdict"]["readers"]``: per agreement metric, the method's mean and the readers' on
    the same (image, class) pairs, the paired difference with its CI and the call; and one line."""
    from ..cams import method_name

    reason = unavailable_reason(agreements)
    if reason is not None:
        return {"available": False, "line": f"{method_name(method)}: no inter-reader reference: {reason}."}
    value = {(c.image, c.label): c for c in cases}
    paired = [(a, value[(a[0], a[1])]) for a in agreements if (a[0], a[1]) in value]
    groups = [a[0] for a, _ in paired]
    out: dict[str, Any] = {"available": True, "n_pairs": len(paired), "n_images": len(set(groups)), "against": {}}
    for m, ours_key in AGREEMENT_METRICS.items():
        ours = np.array([c.metrics[ours_key] for _, c in paired], dtype=np.float64)
        theirs = np.array([a[2][m] for a, _ in paired], dtype=np.float64)
        diff = withhold_intervals(bootstrap_mean(ours - theirs, groups, n_resamples=n_resamples, seed=seed).to_json())
        out["against"][ours_key] = {
            "readers_metric": m, "method": float(ours.mean()) if ours.size else None,
            "readers": float(theirs.mean()) if theirs.size else None, "difference": diff, "verdict": call(diff),
        }  # fmt: skip
    out["line"] = reader_line(method_name(method), out, rule)
    return out


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.3f}"


def reader_line(name: str, doc: Mapping[str, Any], rule: str) -> str:
    """One line: ``<method> vs a second radiologist (<n> (image, class) pairs ... on <m> images): <metric> <method's
    mean> vs readers <readers' mean>: <call> (difference <d> [<low>, <high>]); ...`` (docs/audit-verdicts.md shows
    a measured one)."""
    rests = f"{doc['n_pairs']} (image, class) pairs with two or more readers on {doc['n_images']} images"
    if not doc["n_pairs"]:
        return f"{name}: no case on the images that two readers marked, no comparison with a second radiologist."
    parts = []
    for key, e in doc["against"].items():
        d = e["difference"]
        ci = f" [{_signed(d['low'])}, {_signed(d['high'])}]" if d.get("low") is not None else ""
        word = {"above": "above a second radiologist", "below": "below a second radiologist",
                "not distinguishable": "as well as a second radiologist (not distinguishable)",
                "too few images": f"no verdict (fewer than {MIN_IMAGES} images)"}.get(e["verdict"], e["verdict"])  # fmt: skip
        parts.append(f"{_METRIC_SHORT[key]} {e['method']:.3f} vs readers {e['readers']:.3f}: {word} (difference {_signed(d['value'])}{ci})")
    tail = "" if rule == "per_reader" else " (union rule: the map is scored against every reader's regions at once, a larger target than one reader's)"
    return f"{name} vs {READERS_NAME} ({rests}): " + "; ".join(parts) + tail + "."


def reader_lines(doc: Mapping[str, Any] | None, methods: Mapping[str, Any]) -> list[str]:
    """report.md's (and the page's) inter-reader section."""
    if not doc:
        return []
    from ..formatting import fmt_estimate

    lines = ["### Inter-reader agreement (a second radiologist)", ""]
    if not doc.get("available"):
        return lines + [f"Unavailable: {doc.get('reason')}.", ""]
    lines += [
        f"How well the radiologists agree with each other on the same images: {doc['n_pairs']} (image, class) pairs "
        f"marked by two or more readers (mean {doc['readers_per_pair']} readers) on {doc['n_images']} images; mean over "
        "the pairs [95% CI resampling images]. Reader rule for the maps' figures: "
        f"`{doc['reader_rule']}` (docs/audit.md).",
        "",
        "| Class | " + " | ".join(AGREEMENT_NAMES[m] for m in AGREEMENT_METRICS) + " |",
        "|---" * (1 + len(AGREEMENT_METRICS)) + "|",
        "| **all** | " + " | ".join(fmt_estimate(doc["metrics"][m]["overall"]) for m in AGREEMENT_METRICS) + " |",
    ]
    first = next(iter(AGREEMENT_METRICS))
    for label in doc["metrics"][first]["per_class"]:
        lines.append(f"| {label} | " + " | ".join(fmt_estimate(doc["metrics"][m]["per_class"][label]) for m in AGREEMENT_METRICS) + " |")
    lines.append("")
    for entry in methods.values():
        readers = (entry.get("verdict") or {}).get("readers")
        if readers:
            lines.append(f"- **{readers['line']}**")
    return lines + [""]
