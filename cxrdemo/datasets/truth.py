"""Ground truth: NIH's radiologist boxes looked up by file name, a configured data set's boxes looked up by file
name, or boxes the caller supplies.

NIH's ``BBox_List_2017.csv.gz`` ships inside the package (see ``resources/NIH_ATTRIBUTION.md``). Its boxes are in
the 1024 px images' pixels; for a file of the same name at another size (some copies are 256 px) they are scaled.
A data set in another layout, converted by :func:`cxrdemo.datasets.bridge.export_nih`, has a box list of the same
format whose ``Image Index`` is the image's own file name (``{image_id}.dicom``...); :func:`listed_boxes` finds an
image there by its file name, or by its name without the extension (a DICOM uploaded as a PNG copy).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..boxes import Box, validate_box
from ..errors import BoxError
from ..locations import NIH_BOX_LIST
from .nih import NIH_SIDE, match_class, nih_key, read_box_csv
from ..publicmode import clip_text


@lru_cache(maxsize=4)
def _index(path: str) -> Mapping[str, tuple[Box, ...]]:
    return {k: tuple(v) for k, v in read_box_csv(path).items()}


def nih_boxes(name: str, width: int, height: int, box_list: str | Path = NIH_BOX_LIST) -> list[Box]:
    """NIH's boxes for the image called ``name``, in the pixels of a ``width`` x ``height`` copy of it."""
    key = nih_key(name)
    if key is None:
        return []
    boxes = _index(str(box_list)).get(key, ())
    sx, sy = width / NIH_SIDE, height / NIH_SIDE
    return [b.scaled(sx, sy).clipped(width, height) for b in boxes]


@lru_cache(maxsize=8)
def _by_name(path: str, stamp: tuple[int, int]) -> tuple[Mapping[str, tuple[Box, ...]], Mapping[str, str]]:
    """A box list by ``Image Index``, and each name without its extension (lower case) -> the name; a stem that two
    names share (``a.png``, ``a.jpg``) is left out of the second map (ambiguous). ``stamp`` (mtime, size) renews it."""
    boxes = {k: tuple(v) for k, v in read_box_csv(path).items()}
    stems: dict[str, str] = {}
    shared: set[str] = set()
    for name in boxes:
        stem = Path(name).stem.lower()
        if stem in stems:
            shared.add(stem)
        stems[stem] = name
    return boxes, {k: v for k, v in stems.items() if k not in shared}


def listed_boxes(name: str, width: int, height: int, box_list: str | Path) -> tuple[str, list[Box]] | None:
    """The boxes of the image called ``name`` in an NIH-format box list whose ``Image Index`` may be any file name,
    in the pixels of a ``width`` x ``height`` copy, and the name it is listed under; ``None`` when it is not listed.

    Matched by the file name, else by the name without its extension (case-insensitive). The list's boxes are in
    NIH's 1024 px frame (:mod:`cxrdemo.datasets.bridge` puts them there from the image's own size), so they are
    scaled by ``width / 1024`` and ``height / 1024``.

    Raises:
        InputError: the box list cannot be read.
    """
    st = os.stat(box_list)
    boxes, stems = _by_name(str(box_list), (st.st_mtime_ns, st.st_size))
    own = Path(str(name)).name
    listed = own if own in boxes else stems.get(Path(own).stem.lower())
    if listed is None:
        return None
    sx, sy = width / NIH_SIDE, height / NIH_SIDE
    return listed, [b.scaled(sx, sy).clipped(width, height) for b in boxes[listed]]


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
        label = match_class(box.label, classes)
        if label is None:
            raise BoxError(f"ground-truth class {clip_text(box.label)!r} is not one of the model's classes; pick one of {', '.join(classes)}")
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
        raise BoxError(f"cannot read box {clip_text(item)!r}; give x1, y1, x2, y2 in pixels and a class") from None
