"""RSNA Pneumonia Detection: ``stage_2_train_labels.csv`` (``patientId,x,y,width,height,Target``), optionally with
``stage_2_detailed_class_info.csv`` (``patientId,class``) beside it.

One row per box; ``Target`` 0 rows carry no box (the image is negative). Boxes are ``x, y, width, height`` in the
1024 px DICOM's pixels, converted to corners here. The boxes mark lung opacities suggestive of pneumonia: their
class is ``Lung Opacity`` (the class-info file's name for ``Target`` 1), never renamed to ``Pneumonia`` silently
(an alias does it, reported: :func:`cxrdemo.datasets.vocabulary.map_names`). Images are ``{patientId}.dcm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import csv_rows, number, row_id, where

#: The class of a ``Target`` 1 box (stage_2_detailed_class_info.csv's name for it).
RSNA_CLASS = "Lung Opacity"
_COLS = ("patientId", "x", "y", "width", "height", "Target")


class RSNAReader(Reader):
    name = "rsna"
    title = "RSNA Pneumonia (stage_2_train_labels.csv)"

    def sniff(self, path: Path, head: str) -> bool:
        cols = [h.strip() for h in head.splitlines()[0].split(",")] if head.strip() else []
        return set(_COLS) <= set(cols) or cols[:2] == ["patientId", "class"]

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        header, rows = csv_rows(path, b.cap, ("patientId",))
        if "class" in header and "Target" not in header:
            labels_file = path.parent / "stage_2_train_labels.csv"
            info_file: Path | None = path
            if labels_file.is_file():
                self._boxes(b, labels_file, *csv_rows(labels_file, b.cap, _COLS))
        else:
            self._boxes(b, path, header, rows)
            info = path.parent / "stage_2_detailed_class_info.csv"
            info_file = info if info.is_file() else None
        if info_file is not None:
            _, rows = csv_rows(info_file, b.cap, ("patientId", "class"))
            for n, row in rows:
                b.image(row["patientId"])
                if not row["class"]:
                    raise InputError(f"{where(info_file, n, 'class')}: empty; give the row's class")
                b.label(row["patientId"], row["class"], 1)
            b.note(f"classes from {info_file.name}")
        return b.finish()

    def _boxes(self, b: Builder, path: Path, header: list[str], rows) -> None:  # noqa: ANN001 - iterator of rows
        missing = [c for c in _COLS if c not in header]
        if missing:
            raise InputError(f"{where(path, 1)}: missing column(s) {', '.join(map(repr, missing))}")
        for n, row in rows:
            pid = row_id(path, n, row, "patientId")
            b.image(pid)
            target = row["Target"]
            if target not in ("0", "1"):
                raise InputError(f"{where(path, n, 'Target')}: {target!r}; Target is 0 or 1")
            if target == "0":
                b.label(pid, RSNA_CLASS, 0)
                continue
            x, y, w, h = (number(path, n, c, row[c]) for c in ("x", "y", "width", "height"))
            b.box(n, pid, RSNA_CLASS, Box.from_xywh(x, y, w, h), None)  # type: ignore[arg-type]


__all__ = ["RSNAReader", "RSNA_CLASS"]
