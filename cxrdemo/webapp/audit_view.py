"""What the audit page shows of a finished run, built from the :class:`~cxrdemo.audit.result.AuditResult` itself
(never read back from the report files): the summary, the tables (AUC with CIs, map metrics with CIs,
faithfulness, the randomization cascade, the baseline comparison), and the case gallery sorted worst first by a
chosen metric, captioned ``image · class · metric value``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..audit.gallery import COLUMNS
from ..audit.outputs import strict_json
from ..cams import method_name
from ..audit.result import AuditResult, CaseRow, partial_note
from ..publicmode import clip_text
from .audit_runs import AuditRun

#: The gallery's sort choices ``(label, key)``; every metric is higher-is-better, so worst first is ascending.
SORT_CHOICES: list[tuple[str, str]] = [(title, key) for key, title in COLUMNS]
#: The metric the gallery is sorted by at first: the CAM box's IoU, as the single-case page shows it.
DEFAULT_SORT = "cam_iou"
_TITLES = dict((key, title) for key, title in COLUMNS)


def case_value(case: CaseRow, key: str) -> float | None:
    """A case's value of metric ``key`` (``None`` when undefined)."""
    value = getattr(case, key) if key in ("probability", "model_iou", "cam_iou") else case.metrics.get(key)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def worst_first(result: AuditResult, key: str = DEFAULT_SORT) -> list[int]:
    """Indices of the cases that have a gallery picture, worst first by ``key`` (undefined values last)."""
    if key not in _TITLES:
        from ..errors import InputError

        raise InputError(f"unknown metric {clip_text(key)!r}; sort by one of {', '.join(_TITLES)}")
    shown = [i for i, c in enumerate(result.cases) if c.thumbnail]
    return sorted(shown, key=lambda i: (case_value(result.cases[i], key) is None, case_value(result.cases[i], key) or 0.0, i))


def caption(case: CaseRow, key: str, several_methods: bool) -> str:
    """``00000468_017.png · Atelectasis · CAM-box IoU 0.42`` (the method too when the run had several)."""
    value = case_value(case, key)
    parts = [case.image, case.label.replace("_", " ")]
    if several_methods:
        parts.append(method_name(case.method))
    parts.append(f"{_TITLES[key]} {'-' if value is None else f'{value:.2f}'}")
    return " \u00b7 ".join(parts)


def gallery_items(run: AuditRun, order: Sequence[int], key: str) -> list[tuple[str, str]]:
    """``(picture path, caption)`` of the cases in ``order``."""
    several = len(run.result.methods) > 1
    return [(str(run.folder / run.result.cases[i].thumbnail), caption(run.result.cases[i], key, several)) for i in order]


def _fmt(est: dict[str, Any] | None, digits: int = 3) -> str:
    from ..formatting import fmt_estimate

    return fmt_estimate(est, digits)


def _demote(lines: Sequence[str]) -> str:
    """Report Markdown for the page: the first ``##`` section title goes (the page's accordion says it), the others
    become small headings."""
    lines = list(lines)
    if lines and lines[0].startswith("## "):
        lines = lines[1:]
    return "\n".join(("#### " + ln[3:]) if ln.startswith("## ") else ln for ln in lines).strip()


def detection_lines(doc: dict | None) -> list[str]:
    """A detector's headline for the summary: mAP at IoU 0.5 and 0.4 and FROC's mean sensitivity [95% CI] (every
    figure is in the report's zip); nothing for a model that predicts no scored boxes."""
    if not doc:
        return []
    keys = list(doc["ap"])
    return [
        "",
        f"Detector: {doc['n_predicted']} boxes, {doc['n_truth']} ground-truth boxes.",
        "",
        "| " + " | ".join([*(f"mAP@{k}" for k in keys), *(f"FROC mean, IoU {k}" for k in doc["froc"])]) + " |",
        "|" + "---|" * (len(keys) + len(doc["froc"])),
        "| " + " | ".join([*(_fmt(doc["ap"][k]["mean"]) for k in keys), *(_fmt(f["mean"]) for f in doc["froc"].values())]) + " |",
        "",
        "AP per class, IoU accuracy, the FROC table and the errors: report.md in the downloaded report; the worst "
        "images first in gallery.html.",
    ]


def readers_summary(readers: dict[str, Any] | None, methods: dict[str, Any]) -> list[str]:
    """The third reference level for the page: how well the radiologists agree with each other (pointing game,
    share of one reader's region in another's, IoU of two readers' regions) and each method's comparison with it,
    or why it is unavailable."""
    if not readers:
        return []
    if not readers.get("available"):
        return ["", f"**A second radiologist** (inter-reader agreement): unavailable: {readers.get('reason')}."]
    m = readers["metrics"]
    lines = [
        "",
        f"**A second radiologist** (inter-reader agreement, {readers['n_pairs']} (image, class) pairs on "
        f"{readers['n_images']} images): pointing game {_fmt(m['pointing_game']['overall'])}, share of one reader's "
        f"region in another's {_fmt(m['energy_in_box']['overall'])}, IoU of two readers' regions {_fmt(m['iou']['overall'])}.",
        "",
    ]
    for entry in methods.values():
        line = ((entry.get("verdict") or {}).get("readers") or {}).get("line")
        if line:
            lines.append(f"- {line}")
    return lines


def summary(run: AuditRun) -> str:
    """The run at a glance: data set, model, images and boxes, mean AUC [95% CI], and per method the CAM-box IoU,
    pointing game and energy in box [95% CI]; the notes (e.g. that the model saw these images)."""
    r, ev = run.result, run.result.evaluation
    model = ev.model
    lines = [
        f"**{run.dataset.name}**: {ev.n_images} images, {ev.n_boxes} ground-truth boxes; model `{model.get('architecture')}` "
        f"from `{model.get('source')}` on {run.device}; {run.seconds:.0f} s.",
        "",
        f"Mean AUC over the classes: **{_fmt(r.mean_auc_ci) if r.mean_auc_ci else _fmt({'value': ev.mean_auc})}** "
        "(95% CI, 1,000 bootstrap resamples of images).",
    ]
    lines += detection_lines(r.detection)
    doc = r.plausibility
    if doc:
        lines += ["", "| method | CAM-box IoU | pointing game | energy in box |", "|---|---|---|---|"]
        for m, entry in doc["methods"].items():
            cells = [_fmt(entry[k]["overall"]) for k in ("cam_iou", "pointing_game", "energy_in_box")]
            lines.append(f"| {method_name(m)} | " + " | ".join(cells) + " |")
        ref = r.plausibility_reference or {}
        if ref:
            chance = ref["uniform"]
            lines.append(f"| *uniformly random map (chance)* | {_fmt({'value': chance['cam_iou']})} | "
                         f"{_fmt({'value': chance['pointing_game']})} | {_fmt({'value': chance['energy_in_box']})} |")  # fmt: skip
            centre = ref["center"]
            lines.append(f"| *fixed centred map (centre bias)* | {_fmt(centre['cam_iou'])} | {_fmt(centre['pointing_game'])} | "
                         f"{_fmt(centre['energy_in_box'])} |")  # fmt: skip
        lines += ["", "**Verdicts** (paired against both references, box by box):", ""]
        lines += [f"- {entry['verdict']['line']}" for entry in doc["methods"].values() if entry.get("verdict")]
        lines += readers_summary(ref.get("readers"), doc["methods"])
    if r.partial:
        lines += ["", f"> **Partial report:** {r.partial['images_done']} of {r.partial['images_planned']} images; "
                      f"{r.partial['resume']}."]  # fmt: skip
    said = partial_note(r.partial) if r.partial else None  # said once, as the line above
    for note in r.notes:
        if note != said:
            lines += ["", f"> **Note:** {note}."]
    return "\n".join(lines)


def auc_table(result: AuditResult) -> str:
    """Every class: positives, negatives, AUC and its 95% CI, then the mean."""
    from ..report import full_auc_table

    return "\n".join(full_auc_table(result.evaluation, result.auc_ci or None))


def map_tables(result: AuditResult) -> str:
    """The map metrics per method (and per method and class), each a mean over boxes [95% CI]."""
    from ..report import plausibility_tables

    return _demote(plausibility_tables(result))


def faithfulness_table(result: AuditResult) -> str:
    """ROAD per method, or ``""`` when not asked for."""
    from ..report import faithfulness_table as table

    return _demote(table(result))


def sanity_tables(result: AuditResult) -> str:
    """The randomization cascade and class sensitivity, or ``""`` when not asked for."""
    from ..report import sanity_tables as tables

    return _demote(tables(result))


def baseline_tables(result: AuditResult) -> str:
    """Per baseline, the paired AUC comparison, or ``""`` without a baseline."""
    from ..report import baseline_tables as tables

    return _demote(tables(result))


def figure(run: AuditRun, name: str) -> str | None:
    """The path of a plot the run wrote (``sanity.png``...), or ``None``."""
    path = Path(run.folder) / name
    return str(path) if path.is_file() else None


def baseline_figure(run: AuditRun) -> str | None:
    """The first ``auc_vs_<baseline>.png`` the run wrote, or ``None``."""
    found = sorted(Path(run.folder).glob("auc_vs_*.png"))
    return str(found[0]) if found else None


def report_json(result: AuditResult) -> dict[str, Any]:
    """``report.json``'s document with every NaN or infinity as ``null`` and numpy numbers as Python ones (JSON that
    any client parses)."""
    return strict_json(result.to_json())


