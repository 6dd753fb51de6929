"""Ground truth: NIH's radiologist boxes looked up by file name, or boxes the caller supplies.

NIH's ``BBox_List_2017.csv.gz`` ships inside the package (see ``resources/NIH_ATTRIBUTION.md``). Its boxes are in
the 1024 px images' pixels; for a file of the same name at another size (some copies are 256 px) they are scaled.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .boxes import Box, validate_box
from .errors import BoxError

NIH_BOX_LIST = Path(__file__).resolve().parent / "resources" / "BBox_List_2017.csv.gz"
NIH_SIDE = 1024
#: The box file's spellings that differ from the label file's.
NIH_BOX_ALIASES = {"Infiltrate": "Infiltration"}
_NIH_NAME = re.compile(r"(\d{8}_\d{3})")


def nih_key(name: str) -> str | None:
    """The NIH ``Image Index`` (``00013118_008.png``) inside a file name or path, if there is one."""
    m = _NIH_NAME.search(Path(str(name)).name)
    return f"{m.group(1)}.png" if m else None


def read_box_csv(path: str | Path) -> dict[str, tuple[Box, ...]]:
    """Read an NIH-format box list (``Image Index``, ``Finding Label``, ``Bbox [x,y,w,h]`` + 3 columns; gz ok)."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    rows = csv.reader(io.StringIO(raw.decode("utf-8-sig")))
    next(rows, None)
    index: dict[str, list[Box]] = {}
    for row in rows:
        if len(row) < 6 or not row[0]:
            continue
        label = NIH_BOX_ALIASES.get(row[1], row[1])
        x, y, w, h = (float(v) for v in row[2:6])
        index.setdefault(row[0], []).append(Box.from_xywh(x, y, w, h, label))
    return {k: tuple(v) for k, v in index.items()}


@lru_cache(maxsize=4)
def _index(path: str) -> Mapping[str, tuple[Box, ...]]:
    return read_box_csv(path)


def nih_boxes(name: str, width: int, height: int, box_list: str | Path = NIH_BOX_LIST) -> list[Box]:
    """NIH's boxes for the image called ``name``, in the pixels of a ``width`` x ``height`` copy of it."""
    key = nih_key(name)
    if key is None:
        return []
    boxes = _index(str(box_list)).get(key, ())
    sx, sy = width / NIH_SIDE, height / NIH_SIDE
    return [b.scaled(sx, sy).clipped(width, height) for b in boxes]


def user_boxes(
    boxes: Iterable[Box | Sequence[float] | Mapping[str, object]],
    width: int,
    height: int,
    classes: Sequence[str],
) -> list[Box]:
    """Check boxes a user drew or typed (xyxy pixels) and return them clipped to the image.

    Accepts :class:`Box`, ``(x1, y1, x2, y2, label)`` sequences or ``{"label", "xyxy"}`` mappings; refuses unknown
    classes, wrong corner order, zero area and boxes outside the image with :class:`BoxError`.
    """
    out = []
    for item in boxes:
        box = _as_box(item)
        label = NIH_BOX_ALIASES.get(box.label, box.label)
        if label not in classes:
            raise BoxError(f"ground-truth class {box.label!r} is not one of the model's classes; pick one of {', '.join(classes)}")
        out.append(validate_box(Box(box.x1, box.y1, box.x2, box.y2, label), width, height))
    return out


def _as_box(item: Box | Sequence[float] | Mapping[str, object]) -> Box:
    if isinstance(item, Box):
        return item
    try:
        if isinstance(item, Mapping):
            x1, y1, x2, y2 = (float(v) for v in item["xyxy"])  # type: ignore[union-attr]
            return Box(x1, y1, x2, y2, str(item.get("label", "")))
        values = list(item)
        label = str(values[4]) if len(values) > 4 else ""
        x1, y1, x2, y2 = (float(v) for v in values[:4])
        return Box(x1, y1, x2, y2, label)
    except (KeyError, TypeError, ValueError):
        raise BoxError(f"cannot read box {item!r}; give x1, y1, x2, y2 in pixels and a class") from None
