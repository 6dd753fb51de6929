"""Teacher predictions for knowledge distillation (``train --teacher-predictions CSV``).

The file holds one row per image: ``Image Index`` and ``prob_<Label>`` for every label the model classifies (NIH's
label names), each a probability in [0, 1]. The project's teacher is the public reproduce-chexnet DenseNet-121
(about 78,000 NIH training radiographs; its predictions for the shared images that lay in its TEST fold are in
``../shared/data/teacher/``). Every malformed file gives a one-line :class:`~cxrdemo.errors.InputError`.

How the probabilities enter the loss: see :func:`cxrdemo.training.losses.distillation_bce`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError

PREFIX = "prob_"

#: What the model card says about the project's teacher file (recognised by its file name).
KNOWN_TEACHERS = {
    "reproduce-chexnet_predictions.csv": {
        "source": "jrzech/reproduce-chexnet (GitHub), file pretrained/preds.csv: a DenseNet-121 CheXNet reproduction "
        "trained on about 78,000 NIH ChestX-ray14 radiographs (its own patient-wise train fold); the rows used are "
        "images of its TEST fold (it never trained on them)",
        "licence": "BSD 3-Clause, Copyright (c) 2018 John Zech (licence text: LICENSE-reproduce-chexnet beside the file)",
        "credit": "J. Zech, reproduce-chexnet, https://github.com/jrzech/reproduce-chexnet",
    }
}


@dataclass
class TeacherPredictions:
    """Per-image teacher probabilities.

    Attributes:
        path: the file read.
        classes: the label order of :attr:`probs`' columns (the model's classes).
        probs: ``{image name: (C,) float32}``.
        source, licence, credit: provenance for the model card (empty when the file is not a known one).
    """

    path: Path
    classes: list[str]
    probs: dict[str, np.ndarray]
    source: str = ""
    licence: str = ""
    credit: str = ""

    def __len__(self) -> int:
        return len(self.probs)

    def targets_for(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(probs (N, C) float32, has_teacher (N,) bool)`` for ``names`` (rows without a teacher: zeros, False)."""
        out = np.zeros((len(names), len(self.classes)), dtype=np.float32)
        mask = np.zeros(len(names), dtype=bool)
        for i, name in enumerate(names):
            row = self.probs.get(name)
            if row is not None:
                out[i] = row
                mask[i] = True
        return out, mask

    def card_info(self, n_train_with: int, n_train: int, weight: float, temperature: float) -> dict:
        """What the model card records about the teacher and its use."""
        return {
            "file": self.path.name, "source": self.source or f"file {self.path.name} (source not recorded)",
            "licence": self.licence or "not recorded", "credit": self.credit or "not recorded",
            "rows": len(self.probs), "train_images_with_teacher": n_train_with, "train_images": n_train,
            "distill_weight": weight, "distill_temperature": temperature,
        }


def read_teacher_predictions(path: str | Path, classes: Sequence[str]) -> TeacherPredictions:
    """Read and check a teacher CSV; one-line :class:`InputError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--teacher-predictions: no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--teacher-predictions: cannot read {path.name} as UTF-8 CSV ({exc.__class__.__name__})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise InputError(f"--teacher-predictions: {path.name} is empty; expected a header 'Image Index,prob_<Label>,...'")
    header = [h.strip() for h in header]
    if "Image Index" not in header:
        raise InputError(f"--teacher-predictions: {path.name} has no 'Image Index' column (columns: {', '.join(header[:6])}...)")
    prob_cols = {h[len(PREFIX):]: i for i, h in enumerate(header) if h.startswith(PREFIX)}
    unknown = sorted(set(prob_cols) - set(classes))
    if unknown:
        raise InputError(
            f"--teacher-predictions: {path.name} has unknown label name(s) {', '.join(PREFIX + u for u in unknown)}; "
            f"expected prob_<Label> for the labels {', '.join(classes)}"
        )
    missing = [c for c in classes if c not in prob_cols]
    if missing:
        raise InputError(f"--teacher-predictions: {path.name} is missing column(s) {', '.join(PREFIX + m for m in missing)}")
    name_col = header.index("Image Index")
    cols = [prob_cols[c] for c in classes]
    probs: dict[str, np.ndarray] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(f"--teacher-predictions: {path.name} line {line_no} has {len(row)} fields where the header has {len(header)}")
        name = row[name_col].strip()
        values = []
        for c, j in zip(classes, cols):
            cell = row[j].strip()
            try:
                v = float(cell)
            except ValueError:
                raise InputError(f"--teacher-predictions: {path.name} line {line_no}: {PREFIX}{c} is {cell!r}, not a number") from None
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise InputError(f"--teacher-predictions: {path.name} line {line_no}: {PREFIX}{c} = {cell} lies outside [0, 1]")
            values.append(v)
        if name in probs:
            raise InputError(f"--teacher-predictions: {path.name} line {line_no}: image {name} appears twice")
        probs[name] = np.asarray(values, dtype=np.float32)
    if not probs:
        raise InputError(f"--teacher-predictions: {path.name} has a header but no rows")
    known = KNOWN_TEACHERS.get(path.name, {})
    return TeacherPredictions(
        path=path, classes=list(classes), probs=probs, source=known.get("source", ""),
        licence=known.get("licence", ""), credit=known.get("credit", ""),
    )


# ------------------------------------------------------------------------------------ validation statistics
def _fast_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mann-Whitney AUC with tie handling (equals sklearn's roc_auc_score); ``None`` without both classes."""
    from scipy.stats import rankdata

    pos = y > 0.5
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def mean_auc(targets: np.ndarray, probs: np.ndarray) -> float | None:
    """Mean over labels with positives and negatives of sklearn's ``roc_auc_score``."""
    from sklearn.metrics import roc_auc_score

    vals = [
        roc_auc_score(targets[:, c], probs[:, c])
        for c in range(targets.shape[1])
        if 0 < targets[:, c].sum() < targets.shape[0]
    ]
    return float(np.mean(vals)) if vals else None


def _mean_fast(targets: np.ndarray, probs: np.ndarray) -> float | None:
    vals = [a for a in (_fast_auc(targets[:, c], probs[:, c]) for c in range(targets.shape[1])) if a is not None]
    return float(np.mean(vals)) if vals else None


def bootstrap_mean_auc(
    targets: np.ndarray, *models: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> list[dict[str, float | None]]:
    """Mean AUC with a percentile bootstrap CI (``n`` resamples of images, ``seed``) for each of ``models``.

    All models are resampled with the SAME image draws (so their intervals and the paired difference of the first
    two are comparable). A resample's mean is over the labels that have positives and negatives in it. Returns,
    per model, ``{"mean_auc", "lo", "hi", "n_images"}``; with two or more models the first dict also gets
    ``"diff_vs_second"``, ``"diff_lo"``, ``"diff_hi"`` (first minus second).
    """
    targets = np.asarray(targets, dtype=np.float64)
    rng = np.random.default_rng(seed)
    m = len(targets)
    draws = [[] for _ in models]
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, m, size=m)
        vals = [_mean_fast(targets[idx], np.asarray(p)[idx]) for p in models]
        for d, v in zip(draws, vals):
            if v is not None:
                d.append(v)
        if len(vals) >= 2 and vals[0] is not None and vals[1] is not None:
            diffs.append(vals[0] - vals[1])
    q = ((1 - level) / 2 * 100, (1 + level) / 2 * 100)
    out = []
    for p, d in zip(models, draws):
        lo, hi = (float(v) for v in np.percentile(d, q)) if d else (None, None)
        out.append({"mean_auc": mean_auc(targets, np.asarray(p)), "lo": lo, "hi": hi, "n_images": m})
    if len(models) >= 2 and diffs:
        lo, hi = (float(v) for v in np.percentile(diffs, q))
        out[0].update(diff_vs_second=float(out[0]["mean_auc"] - out[1]["mean_auc"]), diff_lo=lo, diff_hi=hi)
    return out


def validation_comparison(
    names: Sequence[str], targets: np.ndarray, probs: np.ndarray, teacher: TeacherPredictions | None, n: int = 1000, seed: int = 0
) -> dict:
    """Our validation mean AUC with its bootstrap CI, and, on the validation images with a teacher row, ours and
    the teacher's (same draws; paired difference). Computed with sklearn and a local bootstrap (this module)."""
    ours = bootstrap_mean_auc(targets, probs, n=n, seed=seed)[0]
    result: dict = {"ours": ours, "n_resamples": n, "seed": seed, "method": "percentile bootstrap over images, 95%"}
    if teacher is not None:
        tp, mask = teacher.targets_for(list(names))
        if mask.sum() >= 2:
            sub_ours, sub_teacher = bootstrap_mean_auc(targets[mask], probs[mask], tp[mask], n=n, seed=seed)
            result["subset_ours"] = sub_ours
            result["subset_teacher"] = sub_teacher
    return result
