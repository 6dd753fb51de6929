"""CheXpert / MIMIC-CXR-JPG labels: a CSV with the 14 CheXpert observations as columns, each ``1.0`` (positive),
``0.0`` (negative), ``-1.0`` (uncertain) or blank (not mentioned); image labels only.

CheXpert's ``train.csv`` / ``valid.csv`` name each image by ``Path`` (``CheXpert-v1.0-small/train/patient1/study1/
view1_frontal.jpg``: the id, found under the image folder by its tail); MIMIC-CXR-JPG's
``mimic-cxr-2.0.0-chexpert.csv`` labels studies (``subject_id,study_id``: the id ``p{subject}/s{study}``, no image
file). Uncertain labels are kept as -1; :func:`cxrdemo.datasets.vocabulary.policy_target` decides (default: left out
of that class's AUC only, counted in the report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import csv_rows, number, row_id, where

#: CheXpert's 14 observations, in its CSV's order.
CHEXPERT_CLASSES: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)


class CheXpertReader(Reader):
    name = "chexpert"
    title = "CheXpert / MIMIC-CXR-JPG label CSV (1.0 / 0.0 / -1.0 / blank)"

    def sniff(self, path: Path, head: str) -> bool:
        cols = set(h.strip() for h in head.splitlines()[0].split(",")) if head.strip() else set()
        return ("Path" in cols or {"subject_id", "study_id"} <= cols) and len(cols & set(CHEXPERT_CLASSES)) >= 5

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        header, rows = csv_rows(path, b.cap)
        classes = [c for c in header if c in CHEXPERT_CLASSES]
        if not classes or not ("Path" in header or {"subject_id", "study_id"} <= set(header)):
            raise InputError(f"{where(path, 1)}: a CheXpert label CSV has 'Path' (or 'subject_id','study_id') and "
                             "CheXpert's observation columns")
        uncertain = 0
        for n, row in rows:
            if "Path" in header:
                image_id = row_id(path, n, row, "Path")
            else:
                if not (row["subject_id"] and row["study_id"]):
                    raise InputError(f"{where(path, n, 'study_id')}: empty; every row names its study")
                image_id = f"p{row['subject_id']}/s{row['study_id']}"
            b.image(image_id)
            for c in classes:
                value = number(path, n, c, row.get(c), blank=True)
                if value is None:
                    continue
                if value not in (1.0, 0.0, -1.0):
                    raise InputError(f"{where(path, n, c)}: {value:g}; a CheXpert label is 1.0, 0.0, -1.0 or blank")
                uncertain += value == -1.0
                b.label(image_id, c, int(value))
        if uncertain:
            b.note(f"{uncertain:,} uncertain label(s) (-1); by default left out of the AUC of their class and counted")
        return b.finish()


__all__ = ["CheXpertReader", "CHEXPERT_CLASSES"]
