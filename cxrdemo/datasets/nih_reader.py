"""NIH ChestX-ray14 in its own files: the label CSV (``Data_Entry_2017_v2020.csv``) and the box list
(``BBox_List_2017.csv``), the embedded default.

- Given the box list (``Image Index,Finding Label,Bbox [x,y,w,h],,,``): its boxes, ``Infiltrate`` read as
  ``Infiltration`` (:func:`cxrdemo.datasets.nih.canonical_label`).
- Given the label CSV (``Image Index``, ``Finding Labels`` joined by ``|``): the 14 labels of each image (1 when
  listed, else 0; ``No Finding`` lists none), and the boxes of the box list beside it (``BBox_List_2017.csv[.gz]``
  or ``boxes.csv``), else of the embedded list, for the images of the label CSV.
- Given nothing (spec ``nih``): the embedded box list (``cxrdemo/resources/BBox_List_2017.csv.gz``).

NIH's boxes are ``x, y, w, h`` in the 1024 px originals: converted to corners, and scaled to the image's own size
when the image is found at another size (a 256 px copy), so every box is in the pixels of the file it belongs to.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from ..locations import NIH_BOX_LIST
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import csv_rows, head_text, number, read_text, row_id, where
from .nih import NIH_CLASSES, NIH_SIDE, canonical_label

_BOX_FIELDS = ("x", "y", "w", "h")


def read_nih_boxes(b: Builder, path: Path, only: set[str] | None = None) -> int:
    """Add the boxes of an NIH box list to ``b`` (only the images in ``only`` when given); returns how many were
    scaled to an image found at another size than NIH's 1024 px."""
    text = read_text(path, b.cap)
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header or header[0].strip() != "Image Index" or len(header) < 3 or header[1].strip() != "Finding Label":
        raise InputError(f"{where(path, 1)}: an NIH box list starts with 'Image Index', 'Finding Label', 'Bbox [x,y,w,h]'")
    scaled = 0
    for n, row in enumerate(rows, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if n - 1 > b.cap.rows:
            raise InputError(f"{where(path)}: more than {b.cap.rows:,} rows; split the file")
        name = row[0].strip()
        if only is not None and name not in only:
            continue
        if len(row) < 6:
            raise InputError(f"{where(path, n)}: {len(row)} cells; a box row has the image, the finding and x, y, w, h")
        if not name or not row[1].strip():
            raise InputError(f"{where(path, n, 'Image Index' if not name else 'Finding Label')}: empty")
        x, y, w, h = (number(path, n, f"Bbox {f}", v) for f, v in zip(_BOX_FIELDS, row[2:6]))
        box = Box.from_xywh(x, y, w, h)  # type: ignore[arg-type]
        b.image(name)
        size = b.size(name) if b.index is not None else None
        if size is not None and size != (NIH_SIDE, NIH_SIDE):
            box = box.scaled(size[0] / NIH_SIDE, size[1] / NIH_SIDE)
            scaled += 1
        b.box(n, name, canonical_label(row[1]), box, None)
    return scaled


class NIHReader(Reader):
    name = "nih"
    title = "NIH ChestX-ray14 (Data_Entry_2017 label CSV, BBox_List_2017 box list; the embedded default)"

    def sniff(self, path: Path, head: str) -> bool:
        return head.lstrip().startswith("Image Index")

    def read(self, path: Path | None = None, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path) if path is not None else Path(NIH_BOX_LIST)
        b = Builder(path, self.name, resolve_limits(limits), images)
        first = head_text(path).splitlines()[:1]
        if first and "Finding Labels" in first[0]:
            self._labels(b, path)
            box_file = next((p for p in (path.parent / "BBox_List_2017.csv", path.parent / "BBox_List_2017.csv.gz",
                                         path.parent / "boxes.csv") if p.is_file()), None)
            src = box_file or Path(NIH_BOX_LIST)
            scaled = read_nih_boxes(b, src, only=set(b.gt.labels))
            b.note(f"boxes from {src.name}" + ("" if box_file else " (the embedded NIH list)"))
        else:
            scaled = read_nih_boxes(b, path)
        if scaled:
            b.note(f"{scaled} NIH box(es) scaled from the 1024 px frame to their image's size")
        return b.finish()

    def _labels(self, b: Builder, path: Path) -> None:
        _, rows = csv_rows(path, b.cap, ("Image Index", "Finding Labels"))
        for n, row in rows:
            name = row_id(path, n, row, "Image Index")
            found = {x.strip() for x in row["Finding Labels"].split("|") if x.strip() and x.strip() != "No Finding"}
            b.image(name)
            for c in NIH_CLASSES:
                b.label(name, c, 1 if c in found else 0)
            for extra in sorted(found - set(NIH_CLASSES)):
                b.label(name, extra, 1)


__all__ = ["NIHReader", "read_nih_boxes"]
