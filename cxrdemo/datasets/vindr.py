"""VinDr-CXR (PhysioNet) and VinBigData (Kaggle's VinDr-CXR): boxes by several radiologists, image labels.

- PhysioNet: ``annotations_{train,test}.csv`` with ``image_id,rad_id,class_name,x_min,y_min,x_max,y_max`` (test:
  the 5-reader consensus, ``rad_id`` may be absent), and ``image_labels_{train,test}.csv`` with ``image_id``
  (``rad_id`` in train: one row per reader) and one 0/1 column per label (28 in all). Given either file, its
  sibling of the same split in the same folder is read too.
- Kaggle: ``train.csv`` with ``image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max``; ``class_id`` 14 is
  ``No finding``.

Boxes are corners in the original DICOM's pixels: kept as they are. ``No finding`` rows carry no box; they state
``No finding`` for that image (and nothing else). A class is positive for an image when any reader marks it.
Images are ``{image_id}.dicom`` (or any supported extension).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import csv_rows, number, row_id, where

_CORNERS = ("x_min", "y_min", "x_max", "y_max")
NO_FINDING = "No finding"


def _header(head: str) -> list[str]:
    return [h.strip() for h in head.splitlines()[0].split(",")] if head.strip() else []


def read_box_rows(b: Builder, path: Path, kaggle: bool) -> None:
    """Add the boxes and ``No finding`` statements of an annotations CSV to ``b``."""
    need = ("image_id", "class_name") + _CORNERS + (("class_id",) if kaggle else ())
    _, rows = csv_rows(path, b.cap, need)
    for n, row in rows:
        image_id = row_id(path, n, row, "image_id")
        name = row["class_name"]
        if kaggle and row.get("class_id") == "14":
            name = name or NO_FINDING
        reader = row.get("rad_id") or row.get("rad_ID") or None  # Kaggle writes rad_id; accept PhysioNet's either way
        b.image(image_id)
        values = [number(path, n, c, row.get(c), blank=True) for c in _CORNERS]
        if all(v is None for v in values):
            b.label(image_id, name, 1)  # "No finding" (or a box-less statement)
            continue
        if any(v is None for v in values):
            missing = _CORNERS[[v is None for v in values].index(True)]
            raise InputError(f"{where(path, n, missing)}: empty while other corners are given; give all four or none")
        x1, y1, x2, y2 = values  # type: ignore[misc]
        b.box(n, image_id, name, Box(x1, y1, x2, y2), reader)


def read_label_rows(b: Builder, path: Path) -> None:
    """Add an ``image_labels_*.csv`` (one 0/1 column per label; one row per reader in train) to ``b``."""
    header, rows = csv_rows(path, b.cap, ("image_id",))
    classes = [h for h in header if h.lower() not in ("image_id", "rad_id") and h]
    for n, row in rows:
        image_id = row["image_id"]
        b.image(image_id)
        for c in classes:
            value = number(path, n, c, row.get(c), blank=True)
            if value is None:
                continue
            if value not in (0.0, 1.0):
                raise InputError(f"{where(path, n, c)}: {value:g}; image labels are 0 or 1")
            b.label(image_id, c, int(value))


def sibling(path: Path, kind: str) -> Path | None:
    """The other file of a PhysioNet split beside ``path``: ``kind`` is ``annotations`` or ``image_labels``."""
    m = re.search(r"(train|test)", path.name)
    if m is None:
        return None
    for suffix in (".csv", ".csv.gz"):
        cand = path.parent / f"{kind}_{m.group(1)}{suffix}"
        if cand.is_file() and cand != path:
            return cand
    return None


class VinDrReader(Reader):
    """VinDr-CXR as PhysioNet distributes it (annotations + image labels, per split)."""

    name = "vindr"
    title = "VinDr-CXR (PhysioNet annotations_*.csv / image_labels_*.csv)"

    def sniff(self, path: Path, head: str) -> bool:
        cols = set(_header(head))
        boxes = {"image_id", "class_name", *_CORNERS} <= cols and "class_id" not in cols
        labels = "image_id" in cols and ("No finding" in cols or "Aortic enlargement" in cols)
        return boxes or labels

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        cap = resolve_limits(limits)
        b = Builder(Path(path), self.name, cap, images)
        from .files import head_text

        is_boxes = set(_CORNERS) <= set(_header(head_text(Path(path))))
        box_file = Path(path) if is_boxes else sibling(Path(path), "annotations")
        label_file = sibling(Path(path), "image_labels") if is_boxes else Path(path)
        if box_file is not None:
            read_box_rows(b, box_file, kaggle=False)
        if label_file is not None:
            read_label_rows(b, label_file)
            b.note(f"image labels from {label_file.name}")
        return b.finish()


class VinBigDataReader(Reader):
    """Kaggle's VinBigData ``train.csv`` (VinDr-CXR's training boxes with ``class_id``)."""

    name = "vinbigdata"
    title = "VinBigData (Kaggle train.csv)"

    def sniff(self, path: Path, head: str) -> bool:
        return {"image_id", "class_name", "class_id", *_CORNERS} <= set(_header(head))

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        b = Builder(Path(path), self.name, resolve_limits(limits), images)
        read_box_rows(b, Path(path), kaggle=True)
        return b.finish()


__all__ = ["VinDrReader", "VinBigDataReader", "NO_FINDING"]
