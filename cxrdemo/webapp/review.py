"""Review: the cases a user reviewed in a browser session (:class:`ReviewLog`), the reviewed-cases CSV
(:data:`CSV_COLUMNS`, documented in docs/app.md, "Reviewed-cases CSV") and the report export (PNG + JSON)."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..boxes import Box
from ..errors import InputError
from ..compare import SOURCE_NIH
from .boxes_text import truth_nih_boxes
from .state import Case

#: Side of each panel in an exported report.
REPORT_PANEL_SIZE = 1024
#: How many classes the CSV's ``top_probabilities`` column lists.
CSV_TOP_K = 3
#: Columns of the reviewed-cases CSV, in order (documented in docs/app.md, "Reviewed-cases CSV").
CSV_COLUMNS: tuple[str, ...] = (
    "image",
    "class",
    "ground_truth_box",
    "ground_truth_source",
    "predicted_box",
    "predicted_score",
    "cam_box",
    "box_iou",
    "cam_iou",
    "top_probabilities",
    "cam_method",
    "cam_target",
    "cam_threshold",
    "note",
    "model_source",
    "model_revision",
    "model_architecture",
    "reviewed_at",
)


@dataclass(frozen=True)
class ReviewRow:
    """One row of the reviewed-cases CSV (see :data:`CSV_COLUMNS`)."""

    image: str
    label: str
    ground_truth_box: str
    ground_truth_source: str
    predicted_box: str
    predicted_score: str
    cam_box: str
    box_iou: str
    cam_iou: str
    top_probabilities: str
    cam_method: str
    cam_target: str
    cam_threshold: str
    note: str
    model_source: str
    model_revision: str
    model_architecture: str
    reviewed_at: str

    def as_csv(self) -> dict[str, str]:
        """The row keyed by :data:`CSV_COLUMNS`."""
        values = (
            self.image, self.label, self.ground_truth_box, self.ground_truth_source, self.predicted_box,
            self.predicted_score, self.cam_box, self.box_iou, self.cam_iou, self.top_probabilities, self.cam_method,
            self.cam_target, self.cam_threshold, self.note, self.model_source, self.model_revision,
            self.model_architecture, self.reviewed_at,
        )  # fmt: skip
        return dict(zip(CSV_COLUMNS, values))


@dataclass(frozen=True)
class ReviewLog:
    """The cases a user reviewed in this browser session, one entry per (image, model), latest review kept."""

    cases: tuple[tuple[str, tuple[ReviewRow, ...]], ...] = ()

    @property
    def rows(self) -> list[ReviewRow]:
        """Every row, in the order the cases were first reviewed."""
        return [row for _, rows in self.cases for row in rows]

    def __len__(self) -> int:
        return len(self.cases)


def _nih_keys(case: Case) -> set[tuple[str, tuple[float, ...]]]:
    """NIH's boxes of the case's image as ``(label, xyxy)``: a row whose box is one of them says ``NIH`` even when
    the user added boxes of their own (:func:`.boxes_text.snap_to_nih` keeps NIH's boxes exact)."""
    return {(b.label, tuple(b.xyxy)) for b in truth_nih_boxes(case.radiograph)}


def _box_text(box: Box | None) -> str:
    return "" if box is None else json.dumps(box.rounded())


def _score_text(box: Box | None) -> str:
    return "" if box is None or box.score is None else f"{box.score:.4f}"


def review_rows(case: Case, note: str, when: datetime | None = None) -> tuple[ReviewRow, ...]:
    """CSV rows for ``case``: one per ground-truth box; one row for the CAM target when there is no ground truth."""
    a = case.analysis
    stamp = (when or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    top = "; ".join(f"{p.label}={p.probability:.4f}" for p in a.probabilities[:CSV_TOP_K])
    cam = a.cam
    common = dict(
        image=a.image,
        top_probabilities=top,
        cam_method=cam.method if cam else "",
        cam_target=cam.target if cam else "",
        cam_threshold=str(cam.threshold) if cam else "",
        note=" ".join((note or "").split()),
        model_source=str(a.model.get("source") or ""),
        model_revision=str(a.model.get("revision") or ""),
        model_architecture=str(a.model.get("architecture") or ""),
        reviewed_at=stamp,
    )
    if a.ious:
        nih = _nih_keys(case)
        return tuple(
            ReviewRow(
                label=r.label,
                ground_truth_box=_box_text(r.truth),
                ground_truth_source=SOURCE_NIH if (r.truth.label, tuple(r.truth.xyxy)) in nih else case.truth_source,
                predicted_box=_box_text(r.box),
                predicted_score=_score_text(r.box),
                cam_box=_box_text(r.cam_box),
                box_iou="" if r.box_iou is None else f"{r.box_iou:.4f}",
                cam_iou="" if r.cam_iou is None else f"{r.cam_iou:.4f}",
                **common,
            )
            for r in a.ious
        )
    label = cam.target if cam else a.top.label
    box = a.box_for(label)
    return (
        ReviewRow(
            label=label,
            ground_truth_box="",
            ground_truth_source="",
            predicted_box=_box_text(box),
            predicted_score=_score_text(box),
            cam_box=_box_text(cam.box if cam else None),
            box_iou="",
            cam_iou="",
            **common,
        ),
    )


def _review_key(case: Case) -> str:
    return f"{case.analysis.image}\x00{case.key.source}"


def record_review(log: ReviewLog | None, case: Case | None, note: str | None, when: datetime | None = None) -> ReviewLog:
    """A new log with ``case`` (and its ``note``) added, replacing an earlier review of the same image and model."""
    if case is None:
        raise InputError("nothing to save yet: analyse a radiograph first")
    log = log or ReviewLog()
    key = _review_key(case)
    rows = review_rows(case, note or "", when)
    cases = [(k, r) for k, r in log.cases if k != key]
    position = next((i for i, (k, _) in enumerate(log.cases) if k == key), len(cases))
    cases.insert(position, (key, rows))
    return ReviewLog(tuple(cases))


def note_for(log: ReviewLog | None, case: Case | None) -> str:
    """The note saved earlier for ``case`` (same image and model), or ``""``."""
    if not log or case is None:
        return ""
    key = _review_key(case)
    for k, rows in log.cases:
        if k == key and rows:
            return rows[0].note
    return ""


def review_table(log: ReviewLog | None) -> list[list[str]]:
    """Rows for a small on-page table: image, class, box IoU, CAM IoU, note."""
    return [[r.image, r.label, r.box_iou, r.cam_iou, r.note] for r in (log.rows if log else [])]


def csv_text(log: ReviewLog) -> str:
    """The reviewed-cases CSV as text (header :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in log.rows:
        writer.writerow(row.as_csv())
    return buffer.getvalue()


def unique_dir(folder: str | os.PathLike) -> Path:
    """A new, empty subfolder of ``folder`` named by the UTC time (``-1``, ``-2``... when taken)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    for i in range(1000):
        out = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
    raise InputError(f"cannot create an export folder in {root}; free some disk space or restart the app")


def export_csv(log: ReviewLog | None, folder: str | os.PathLike) -> Path:
    """Write ``reviewed_cases.csv`` into a new subfolder of ``folder`` and return its path."""
    if not log or not log.cases:
        raise InputError("no reviewed cases yet: analyse a radiograph and click 'Save review' first")
    path = unique_dir(folder) / "reviewed_cases.csv"
    path.write_text(csv_text(log), encoding="utf-8")
    return path


def export_report(case: Case | None, folder: str | os.PathLike, size: int = REPORT_PANEL_SIZE) -> list[Path]:
    """Write the report of ``case``: the four panels as one PNG (``<image>_report.png``) and the prediction JSON
    (``<image>_prediction.json``, the CLI schema), in a new subfolder of ``folder``; returns both paths."""
    from ..render import render_panels
    from ..render.files import write_report
    from .view import PAGE_HINTS

    if case is None:
        raise InputError("nothing to export yet: analyse a radiograph first")
    out = unique_dir(folder)
    stem = Path(case.analysis.image).stem or "radiograph"
    png = write_report(render_panels(case.radiograph, case.analysis, size=size, hints=PAGE_HINTS), out, stem)
    doc = out / f"{stem}_prediction.json"
    doc.write_text(json.dumps(case.analysis.to_json(), indent=2) + "\n", encoding="utf-8")
    return [png, doc]
