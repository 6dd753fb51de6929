"""COCO-format sets (TBX11K, MS-CXR's JSON, many converted sets): ``{"images": [{"id", "file_name", "width",
"height"}], "annotations": [{"image_id", "category_id", "bbox": [x, y, w, h], "segmentation": ...}],
"categories": [{"id", "name"}]}``.

``bbox`` is ``x, y, width, height`` in the image's pixels, converted to corners here. ``segmentation`` is polygons
(``[[x1, y1, x2, y2, ...], ...]``, rasterised like a box: :mod:`cxrdemo.datasets.masks`) or RLE (``{"size": [h, w],
"counts": str | [int]}``, compressed or not): the instance is then a mask, its box the ``bbox``. The image id is the
``file_name``; a reader id is taken from an annotation's ``rad_id``, ``reader`` or ``annotator`` key when present.
Every category of the file is stated for every image: 1 when annotated on it, else 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import load_json, number, where
from .masks import MaskFormatError, as_input_error, coco_counts, polygon_mask, runs_from_counts


def _is_id(value: object) -> bool:
    """A COCO id: an integer or a string (never a list, an object or a boolean)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


class COCOReader(Reader):
    name = "coco"
    title = "COCO JSON (images / annotations / categories)"

    def sniff(self, path: Path, head: str) -> bool:
        h = head.lstrip()
        return h.startswith("{") and any(f'"{k}"' in h for k in ("images", "annotations", "categories"))

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        data = load_json(path, b.cap)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
            raise InputError(f"{where(path)}: a COCO file is an object with 'images', 'annotations' and 'categories' lists")
        if max(len(data["images"]), len(data["annotations"])) > b.cap.rows:
            raise InputError(f"{where(path)}: more than {b.cap.rows:,} images or annotations; split the file")
        cats: dict[object, str] = {}
        for i, c in enumerate(data["categories"], start=1):
            if not isinstance(c, dict) or not _is_id(c.get("id")) or not isinstance(c.get("name"), str):
                raise InputError(f"{where(path, i, 'categories')}: each category has an 'id' and a 'name'")
            cats[c["id"]] = c["name"]
        ids: dict[object, str] = {}
        for i, im in enumerate(data["images"], start=1):
            if not isinstance(im, dict) or not _is_id(im.get("id")) or not isinstance(im.get("file_name"), str):
                raise InputError(f"{where(path, i, 'images')}: each image has an 'id' and a 'file_name'")
            w, h = im.get("width"), im.get("height")
            ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (w, h))
            ids[im["id"]] = im["file_name"]
            b.image(im["file_name"], w if ok else None, h if ok else None)
        for i, ann in enumerate(data["annotations"], start=1):
            self._annotation(b, path, i, ann, ids, cats)
        names = set(cats.values())
        for image_id in b.gt.images:
            for c in names:
                b.gt.labels.setdefault(image_id, {}).setdefault(c, 0)
        return b.finish()

    def _annotation(self, b: Builder, path: Path, i: int, ann: object, ids: dict, cats: dict) -> None:
        if not isinstance(ann, dict):
            raise InputError(f"{where(path, i, 'annotations')}: each annotation is an object")
        if not _is_id(ann.get("image_id")) or ann.get("image_id") not in ids:
            raise InputError(f"{where(path, i, 'image_id')}: {ann.get('image_id')!r} is not an image of the file")
        if not _is_id(ann.get("category_id")) or ann.get("category_id") not in cats:
            raise InputError(f"{where(path, i, 'category_id')}: {ann.get('category_id')!r} is not a category of the file")
        image_id, name = ids[ann["image_id"]], cats[ann["category_id"]]
        reader = next((str(ann[k]) for k in ("rad_id", "reader", "annotator") if ann.get(k) not in (None, "")), None)
        bbox = ann.get("bbox")
        box = None
        if bbox is not None:
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise InputError(f"{where(path, i, 'bbox')}: a bbox is [x, y, width, height]")
            x, y, w, h = (number(path, i, "bbox", v) for v in bbox)
            box = Box.from_xywh(x, y, w, h, name)  # type: ignore[arg-type]
        seg = ann.get("segmentation")
        if seg:
            entry = b.gt.images[image_id]
            try:
                if isinstance(seg, dict):
                    size, counts = seg.get("size"), seg.get("counts")
                    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
                        raise MaskFormatError('an RLE segmentation is {"size": [h, w], "counts": ...}')
                    if not isinstance(counts, (str, list)):
                        raise MaskFormatError("RLE counts are a string or a list of integers")
                    runs = coco_counts(counts, b.cap) if isinstance(counts, str) else counts
                    mask = runs_from_counts(runs, size[0], size[1], b.cap)
                elif isinstance(seg, list):
                    if not (entry.width and entry.height):
                        size2 = b.size(image_id)
                        if size2 is None:
                            raise MaskFormatError("polygons need the image's width and height (in 'images' or the file)")
                        wh = size2
                    else:
                        wh = (entry.width, entry.height)
                    mask = polygon_mask(seg, wh[1], wh[0], b.cap, flat=True)
                else:
                    raise MaskFormatError("a segmentation is a list of polygons or an RLE object")
            except MaskFormatError as exc:
                raise as_input_error(where(path, i, "segmentation"), exc) from None
            if box is not None and not (box.x2 > box.x1 and box.y2 > box.y1):
                box = None
            b.mask(i, image_id, name, mask, reader, box=box)
        elif box is not None:
            b.box(i, image_id, name, box, reader)
        else:
            b.label(image_id, name, 1)


__all__ = ["COCOReader"]
