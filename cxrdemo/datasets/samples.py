"""Labelled radiographs in NIH's own formats: label and box CSVs, :class:`Sample`, patient-wise splits and folds.

Torch-free (numpy, and scikit-learn for the splits): the app, the audit and ``cxrdemo cv`` use it without loading
torch. The torch side of training (image cache, augmentation, Dataset, loader) is :mod:`cxrdemo.training.dataset`.

Inputs (all accepted gzip-compressed too):
- a label CSV like ``Data_Entry_2017_v2020.csv``: ``Image Index``, ``Finding Labels`` (joined by ``|``;
  ``No Finding`` means no label), ``Patient ID``; optionally ``Uncertain Labels`` (joined by ``|``), which
  :func:`cxrdemo.datasets.bridge.export_nih` writes: the classes whose label is uncertain (CheXpert's -1) under
  policy ``ignore``, left out of those classes' AUCs only (NIH's own files have no such column: nothing uncertain);
- a box CSV like ``BBox_List_2017.csv``: ``Image Index``, ``Finding Label`` (``Infiltrate`` is read as
  ``Infiltration``), ``Bbox [x,y,w,h]`` and three unnamed columns, in the 1024 px originals' pixels.
Only images present in the image folder are used.

Boxes are kept normalised to ``[0, 1]`` (NIH pixels / 1024). Training resizes the WHOLE image to a square (the same
preprocessing as inference, :mod:`cxrdemo.preprocess`), so a normalised box is the box at any copy size: a 256 px
copy's box is the 1024 px box scaled by 1/4 on each axis, which is what :meth:`Sample.boxes_in_pixels` returns.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..boxes import Box
from ..errors import InputError
from ..imaging import IMAGE_SUFFIXES
from .nih import NIH_CLASSES, NIH_SIDE, read_box_csv, read_csv_text


# ---------------------------------------------------------------------------------------------------------- CSVs
#: The optional column of classes whose label is uncertain (left out of their AUCs; see the module doc).
UNCERTAIN_COLUMN = "Uncertain Labels"


@dataclass(frozen=True)
class LabelRow:
    """One row of an NIH label CSV: findings (``()`` for "No Finding"), the patient, and the classes whose label is
    uncertain (``()`` when the file has no :data:`UNCERTAIN_COLUMN`)."""

    labels: tuple[str, ...]
    patient: str
    uncertain: tuple[str, ...] = ()


def _names(cell: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (cell or "").split("|") if x.strip() and x.strip() != "No Finding")


def read_label_csv(path: str | Path) -> dict[str, LabelRow]:
    """``Image Index`` -> :class:`LabelRow` from an NIH-format label CSV (``.csv`` or ``.csv.gz``).

    Raises:
        InputError: no ``Image Index`` / ``Finding Labels`` column, or a class both found and uncertain on one row.
    """
    reader = csv.DictReader(io.StringIO(read_csv_text(path, "label")))
    need = {"Image Index", "Finding Labels"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise InputError(f"{path}: a label CSV needs the columns 'Image Index' and 'Finding Labels' (NIH format)")
    out: dict[str, LabelRow] = {}
    for row in reader:
        name = (row.get("Image Index") or "").strip()
        if not name:
            continue
        found, uncertain = _names(row.get("Finding Labels")), _names(row.get(UNCERTAIN_COLUMN))
        both = sorted(set(found) & set(uncertain))
        if both:
            raise InputError(f"{path}: image {name!r} lists {both[0]!r} both in 'Finding Labels' and in "
                             f"'{UNCERTAIN_COLUMN}'")
        patient = (row.get("Patient ID") or "").strip() or name.split("_")[0]
        out[name] = LabelRow(found, patient, uncertain)
    return out


# ------------------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    """One labelled radiograph.

    Attributes:
        name: NIH ``Image Index`` (file name).
        path: the file.
        labels: findings present (subset of the classes; empty = "No Finding").
        patient: patient id (splits never separate a patient's images).
        boxes: ground-truth boxes normalised to [0, 1] (NIH pixels / 1024), labelled.
        uncertain: classes whose label is uncertain: this image is left out of their AUCs only (empty for NIH's
            own files).
    """

    name: str
    path: Path
    labels: tuple[str, ...]
    patient: str
    boxes: tuple[Box, ...] = ()
    uncertain: frozenset[str] = frozenset()

    def boxes_in_pixels(self, width: int, height: int) -> list[Box]:
        """The ground-truth boxes in the pixels of a ``width`` x ``height`` copy of the image."""
        return [b.scaled(width, height).clipped(width, height) for b in self.boxes]

    def target(self, classes: Sequence[str]) -> np.ndarray:
        """Multi-hot ``(len(classes),)`` float32 label vector, NaN for an uncertain class (never read as negative:
        :func:`cxrdemo.metrics.class_auc` and :func:`cxrdemo.audit.stats.paired_auc_difference` leave it out)."""
        return np.array([np.nan if c in self.uncertain else float(c in self.labels) for c in classes], dtype=np.float32)


@dataclass
class SampleSet:
    """The samples found, and what was skipped, for reporting."""

    samples: list[Sample]
    missing_labels: list[str] = field(default_factory=list)
    unknown_labels: dict[str, int] = field(default_factory=dict)


def load_samples(
    images: str | Path,
    labels_csv: str | Path,
    boxes_csv: str | Path | None = None,
    classes: Sequence[str] = NIH_CLASSES,
    names: Iterable[str] | None = None,
) -> SampleSet:
    """Join the image folder with the label (and box) CSVs; only files present in ``images`` are used.

    ``names`` optionally restricts the set to these file names (e.g. a validation list). Images without a label row
    are skipped and listed in ``missing_labels``; findings outside ``classes`` are counted in ``unknown_labels``.
    """
    folder = Path(images)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    label_rows = read_label_csv(labels_csv)
    box_rows = read_box_csv(boxes_csv) if boxes_csv else {}
    wanted = set(names) if names is not None else None
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    known = set(classes)
    out = SampleSet([])
    for path in files:
        if wanted is not None and path.name not in wanted:
            continue
        row = label_rows.get(path.name)
        if row is None:
            out.missing_labels.append(path.name)
            continue
        for lab in row.labels:
            if lab not in known:
                out.unknown_labels[lab] = out.unknown_labels.get(lab, 0) + 1
        boxes = tuple(
            Box(b.x1 / NIH_SIDE, b.y1 / NIH_SIDE, b.x2 / NIH_SIDE, b.y2 / NIH_SIDE, b.label).clipped(1.0, 1.0)
            for b in box_rows.get(path.name, [])
        )
        out.samples.append(Sample(path.name, path, tuple(l for l in row.labels if l in known), row.patient, boxes,
                                  frozenset(row.uncertain) & known))
    if not out.samples:
        raise InputError(f"no image in {folder} has a row in {labels_csv}; check the folder and the label CSV")
    return out


def label_counts(samples: Sequence[Sample], classes: Sequence[str]) -> dict[str, int]:
    """Positives per class."""
    return {c: sum(c in s.labels for s in samples) for c in classes}


def uncertain_counts(samples: Sequence[Sample], classes: Sequence[str]) -> dict[str, int]:
    """Per class with any, the images whose label is uncertain (left out of that class's AUC), in ``classes`` order."""
    counts = {c: sum(c in s.uncertain for s in samples) for c in classes}
    return {c: n for c, n in counts.items() if n}


def require_certain(rows: Iterable[LabelRow | Sample], labels_csv: str | Path) -> None:
    """Refuse uncertain labels where they cannot be left out per class (training, cross-validation, model soups:
    their losses and thresholds would read them as negative).

    Raises:
        InputError: a row carries an uncertain label (one line).
    """
    n = sum(1 for r in rows if r.uncertain)
    if n:
        raise InputError(f"{labels_csv}: {n} image(s) carry uncertain labels ('{UNCERTAIN_COLUMN}'); training takes "
                         "certain labels only: write the labels with evaluate --uncertain positive or negative")


# --------------------------------------------------------------------------------------------------------- split
def patient_folds(samples: Sequence[Sample], folds: int, seed: int = 0) -> list[list[int]]:
    """Patient-wise, stratified partition of ``samples`` into ``folds`` folds (indices; deterministic for a seed).

    Uses scikit-learn's ``StratifiedGroupKFold`` with groups = patients and, as the stratum of each image, "boxed"
    for images with ground-truth boxes (so every fold gets some), else its rarest finding (by frequency in
    ``samples``), else "No Finding". Every image lies in exactly one fold; no patient spans two folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if folds < 2:
        raise InputError(f"--folds {folds}: k-fold cross-validation needs at least 2 folds")
    if len({s.patient for s in samples}) < folds:
        raise InputError(f"--folds {folds}: only {len({s.patient for s in samples})} patients; use fewer folds")
    counts: dict[str, int] = {}
    for s in samples:
        for lab in s.labels:
            counts[lab] = counts.get(lab, 0) + 1

    def stratum(s: Sample) -> str:
        if s.boxes:
            return "boxed"
        if s.labels:
            return min(s.labels, key=lambda lab: (counts[lab], lab))
        return "No Finding"

    strata = [stratum(s) for s in samples]
    groups = [s.patient for s in samples]
    # Strata rarer than the number of folds make scikit-learn warn; merge them into one.
    freq = {k: strata.count(k) for k in set(strata)}
    strata = [k if freq[k] >= folds else "rare" for k in strata]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [sorted(int(i) for i in val_idx) for _, val_idx in splitter.split(np.zeros(len(samples)), strata, groups)]


def fold_split(samples: Sequence[Sample], folds: int, fold: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples of fold ``fold`` (0-based) of :func:`patient_folds`."""
    if not 0 <= fold < folds:
        raise InputError(f"--fold {fold} must lie in 0..{folds - 1} (--folds {folds})")
    held = set(patient_folds(samples, folds, seed)[fold])
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held]


def split_patients(samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Patient-wise, stratified train/validation split (deterministic for a seed).

    The first fold of :func:`patient_folds` with ``round(1 / val_fraction)`` folds is the validation set (so
    ``val_fraction`` 0.2 gives fold 0 of ``--folds 5``).
    """
    if not 0.0 < val_fraction < 0.5:
        raise InputError(f"validation fraction {val_fraction} must lie in (0, 0.5)")
    return fold_split(samples, max(2, int(round(1.0 / val_fraction))), 0, seed)
