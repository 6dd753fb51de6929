"""CheXlocalize (radiologist segmentations on CheXpert's validation and test images).

- ``gt_segmentations_{val,test}.json``: ``{cxr_id: {task: {"size": [h, w], "counts": str}}}``, pycocotools'
  compressed RLE (decoded here: :func:`cxrdemo.datasets.masks.coco_counts`), every task for every image, an empty
  mask where the radiologists drew nothing;
- ``gt_annotations_{val,test}.json``: ``{cxr_id: {"img_size": [h, w], task: [[[x, y], ...], ...]}}`` polygons.

Ids look like ``patient64541_study1_view1_frontal``; the image is ``patient64541/study1/view1_frontal.jpg`` under
the folder (found by its last three path parts). A task with a non-empty mask is positive (1) for the image, one
with an empty mask is 0. The tasks are CheXlocalize's 10 (``Airspace Opacity`` is CheXpert's ``Lung Opacity``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import load_json_top, where
from .masks import MaskFormatError, as_input_error, coco_counts, polygon_mask, runs_from_counts


def _size(value: object) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    return None


class CheXlocalizeReader(Reader):
    name = "chexlocalize"
    title = "CheXlocalize (gt_segmentations_*.json RLE / gt_annotations_*.json polygons)"

    def sniff(self, path: Path, head: str) -> bool:
        h = head.lstrip()
        coco = any(f'"{k}"' in h for k in ("images", "annotations", "categories"))
        return h.startswith("{") and ('"img_size"' in h or '"counts"' in h) and not coco

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        data = load_json_top(path, b.cap, dict, "a CheXlocalize file is a JSON object keyed by image id", "images")
        for i, (cxr_id, tasks) in enumerate(data.items(), start=1):
            if not isinstance(tasks, dict):
                raise InputError(f"{where(path, i, cxr_id)}: each image maps task names to masks")
            img_size = _size(tasks.get("img_size")) if "img_size" in tasks else None
            if "img_size" in tasks and img_size is None:
                raise InputError(f"{where(path, i, cxr_id + '.img_size')}: give [height, width] as integers")
            b.image(cxr_id, *(reversed(img_size) if img_size else (None, None)))
            for task, value in tasks.items():
                if task == "img_size":
                    continue
                field = f"{cxr_id}.{task}"
                try:
                    if isinstance(value, dict):
                        size = _size(value.get("size"))
                        counts = value.get("counts")
                        if size is None or not isinstance(counts, (str, list)):
                            raise MaskFormatError('an RLE mask is {"size": [h, w], "counts": ...}')
                        h, w = size
                        runs = coco_counts(counts, b.cap) if isinstance(counts, str) else counts
                        mask = runs_from_counts(runs, h, w, b.cap)
                        b.image(cxr_id, w, h)
                    elif isinstance(value, list):
                        if img_size is None:
                            raise MaskFormatError("polygons need the image's 'img_size'")
                        mask = polygon_mask(value, img_size[0], img_size[1], b.cap, flat=False)
                    else:
                        raise MaskFormatError("a task's value is an RLE object or a list of polygons")
                except MaskFormatError as exc:
                    raise as_input_error(where(path, i, field), exc) from None
                if mask.box is None or (hasattr(mask, "area") and mask.area == 0):
                    b.label(cxr_id, task, 0)
                else:
                    b.mask(i, cxr_id, task, mask)
        return b.finish()


__all__ = ["CheXlocalizeReader"]
