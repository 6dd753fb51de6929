"""MS-CXR (phrase grounding on MIMIC-CXR): ``MS_CXR_Local_Alignment_v1.0.0.csv`` with
``dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split``.

One row per box, ``x, y, w, h`` in the original image's pixels (``image_width`` x ``image_height``), converted to
corners here; the class is ``category_name`` (the phrase, ``label_text``, is not kept). The image is found by
``path`` (``files/p1x/p1xxxxxxx/sxxxxxxxx/{dicom_id}.jpg``) or by ``dicom_id``. No reader id (one annotation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import csv_rows, number, row_id, where

_COLS = ("dicom_id", "category_name", "x", "y", "w", "h", "image_width", "image_height")


class MSCXRReader(Reader):
    name = "mscxr"
    title = "MS-CXR (MS_CXR_Local_Alignment CSV)"

    def sniff(self, path: Path, head: str) -> bool:
        cols = [h.strip() for h in head.splitlines()[0].split(",")] if head.strip() else []
        return set(_COLS) <= set(cols)

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        _, rows = csv_rows(path, b.cap, _COLS)
        for n, row in rows:
            did = row_id(path, n, row, "dicom_id")
            iw, ih = (number(path, n, c, row[c]) for c in ("image_width", "image_height"))
            if not (iw and ih and iw > 0 and ih > 0 and iw == int(iw) and ih == int(ih)):  # type: ignore[operator]
                raise InputError(f"{where(path, n, 'image_width')}: image size must be positive whole pixels")
            b.image(did, int(iw), int(ih), file=row.get("path") or None)  # type: ignore[arg-type]
            x, y, w, h = (number(path, n, c, row[c]) for c in ("x", "y", "w", "h"))
            if not row["category_name"]:
                raise InputError(f"{where(path, n, 'category_name')}: empty; give the finding")
            b.box(n, did, row["category_name"], Box.from_xywh(x, y, w, h), None)  # type: ignore[arg-type]
        return b.finish()


__all__ = ["MSCXRReader"]
