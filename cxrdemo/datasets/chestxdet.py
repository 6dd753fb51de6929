"""ChestX-Det / ChestX-Det10 (Deepwise): a JSON list of ``{"file_name", "syms": [...], "boxes": [[x1, y1, x2,
y2], ...], "polygons": [[[x, y], ...], ...]}`` (ChestX-Det10 has no ``polygons``).

Boxes are corners in the 1024 px PNGs' pixels (the images are NIH's, renumbered); a polygon (ChestX-Det's 13-class
release) makes the instance a mask, rasterised like a box (:mod:`cxrdemo.datasets.masks`), its box the annotated
one. The mask's size is the image's (header) when the image is found, else 1024 x 1024. An image listed with no
``syms`` is normal: every class of the file is stated 0 for it (and for the others, the classes it lacks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import load_json_top, number, where
from .masks import MaskFormatError, as_input_error, polygon_mask

#: Side of the ChestX-Det images (used when an image is not at hand).
CHESTXDET_SIDE = 1024


class ChestXDetReader(Reader):
    name = "chestxdet"
    title = "ChestX-Det / ChestX-Det10 (JSON list with file_name, syms, boxes[, polygons])"

    def sniff(self, path: Path, head: str) -> bool:
        h = head.lstrip()
        return h.startswith("[") and '"file_name"' in h and '"syms"' in h

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        data = load_json_top(path, b.cap, list, "a ChestX-Det file is a JSON list of images", "entries")
        classes: set[str] = set()
        assumed = 0
        for i, item in enumerate(data, start=1):
            if not isinstance(item, dict) or not isinstance(item.get("file_name"), str):
                raise InputError(f"{where(path, i, 'file_name')}: each entry is an object with a file name")
            image_id = item["file_name"]
            syms, boxes = item.get("syms", []), item.get("boxes", [])
            polys = item.get("polygons")
            if not isinstance(syms, list) or not isinstance(boxes, list) or len(syms) != len(boxes):
                raise InputError(f"{where(path, i, 'boxes')}: 'syms' and 'boxes' must be lists of the same length")
            if polys is not None and (not isinstance(polys, list) or len(polys) not in (0, len(syms))):
                raise InputError(f"{where(path, i, 'polygons')}: one polygon per box, or none")
            b.image(image_id)
            for k, (sym, box) in enumerate(zip(syms, boxes)):
                if not isinstance(box, list) or len(box) != 4:
                    raise InputError(f"{where(path, i, f'boxes[{k}]')}: a box is [x1, y1, x2, y2]")
                x1, y1, x2, y2 = (number(path, i, f"boxes[{k}]", v) for v in box)
                name = str(sym)
                classes.add(name)
                bx = Box(x1, y1, x2, y2, name)  # type: ignore[arg-type]
                if polys:
                    size = b.size(image_id)
                    if size is None:
                        size, assumed = (CHESTXDET_SIDE, CHESTXDET_SIDE), assumed + 1
                    try:
                        mask = polygon_mask([polys[k]], size[1], size[0], b.cap, flat=False)
                    except MaskFormatError as exc:
                        raise as_input_error(where(path, i, f"polygons[{k}]"), exc) from None
                    if not (bx.x2 > bx.x1 and bx.y2 > bx.y1):
                        raise InputError(f"{where(path, i, f'boxes[{k}]')}: box has no area")
                    b.mask(i, image_id, name, mask, None, box=bx)
                else:
                    b.box(i, image_id, name, bx, None)
        for image_id in b.gt.images:
            for c in classes:
                b.gt.labels.setdefault(image_id, {}).setdefault(c, 0)
        if assumed:
            b.note(f"{assumed} polygon(s) rasterised at {CHESTXDET_SIDE} x {CHESTXDET_SIDE} (image not found)")
        return b.finish()


__all__ = ["ChestXDetReader", "CHESTXDET_SIDE"]
