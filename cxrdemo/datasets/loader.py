"""One entry point for ground truth: ``load_ground_truth("[layout:]file", images=folder)``.

The layout is read from the file (a CSV's header columns, a JSON file's shape), or forced by a prefix naming a
reader (``vindr:annotations_train.csv``, ``coco:tbx11k.json``), as ``timm:`` forces a model format. The readers,
one module each (the counterpart of :mod:`cxrdemo.models`):

=============== =============================================================================================
``nih``         NIH ChestX-ray14 label CSV / ``BBox_List_2017.csv`` (:mod:`.nih_reader`; ``nih`` alone: the
                embedded box list)
``vindr``       VinDr-CXR ``annotations_*.csv`` / ``image_labels_*.csv`` (:mod:`.vindr`)
``vinbigdata``  Kaggle's VinBigData ``train.csv`` (:mod:`.vindr`)
``rsna``        RSNA Pneumonia ``stage_2_train_labels.csv`` (:mod:`.rsna`)
``chestxdet``   ChestX-Det / ChestX-Det10 JSON (:mod:`.chestxdet`)
``chexlocalize`` CheXlocalize ``gt_segmentations_*.json`` / ``gt_annotations_*.json`` (:mod:`.chexlocalize`)
``siim``        SIIM-ACR ``train-rle.csv`` (:mod:`.siim`)
``mscxr``       MS-CXR CSV (:mod:`.mscxr`)
``coco``        COCO JSON (:mod:`.coco`)
``chexpert``    CheXpert / MIMIC-CXR-JPG label CSV (:mod:`.chexpert`)
=============== =============================================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import InputError
from .base import GroundTruth, Reader
from .chestxdet import ChestXDetReader
from .chexlocalize import CheXlocalizeReader
from .chexpert import CheXpertReader
from .coco import COCOReader
from .files import head_text, shown
from .mscxr import MSCXRReader
from .nih_reader import NIHReader
from .rsna import RSNAReader
from .siim import SIIMReader
from .vindr import VinBigDataReader, VinDrReader

#: The readers, in the order layouts are tried (the more specific header first).
READERS: tuple[Reader, ...] = (
    CheXlocalizeReader(),
    COCOReader(),
    ChestXDetReader(),
    VinBigDataReader(),
    VinDrReader(),
    RSNAReader(),
    SIIMReader(),
    MSCXRReader(),
    NIHReader(),
    CheXpertReader(),
)
#: Layout name -> reader.
REGISTRY: dict[str, Reader] = {r.name: r for r in READERS}


def split_spec(spec: str | Path) -> tuple[str | None, str]:
    """``(layout, path)`` of ``"[layout:]path"``; a prefix counts only when it names a layout (so ``C:\\x`` or
    ``./a:b.csv`` stay paths)."""
    text = str(spec).strip()
    if text.lower() in REGISTRY and not Path(text).exists():
        return text.lower(), ""
    head, sep, tail = text.partition(":")
    if sep and head.strip().lower() in REGISTRY:
        return head.strip().lower(), tail.strip()
    return None, text


def detect_layout(path: Path) -> Reader:
    """The reader whose layout ``path`` is in (from its first 4 KB).

    Raises:
        InputError: no layout matches (the message lists the prefixes that force one).
    """
    head = head_text(path)
    for reader in READERS:
        if reader.sniff(path, head):
            return reader
    first = head.splitlines()[0][:80] if head.strip() else "(empty)"
    raise InputError(f"{shown(path)}: layout not recognised from its start {first!r}; force one with a prefix: "
                     f"{', '.join(n + ':' for n in REGISTRY)}")


def load_ground_truth(spec: str | Path, images: str | Path | None = None,
                      limits: Mapping[str, int] | None = None) -> GroundTruth:
    """The ground truth of an annotation file in any supported layout.

    Args:
        spec: ``[layout:]path`` (``nih`` alone: NIH's embedded box list).
        images: the image folder; images are found by id under it (any supported extension, bounded recursive
            walk), and their sizes read from headers where the layout needs them. ``None``: not looked up.
        limits: overrides of the caps (:mod:`cxrdemo.datasets.limits`), for tests.

    Raises:
        InputError: a missing or malformed file, an unknown layout (one line naming the file, row and field).
    """
    layout, where_ = split_spec(spec)
    folder = Path(images) if images not in (None, "") else None
    if layout == "nih" and not where_:
        return NIHReader().read(None, folder, limits)
    if not where_:
        raise InputError(f"ground truth {str(spec)!r}: give a file, as [layout:]path")
    path = Path(where_).expanduser()
    if not path.is_file():
        raise InputError(f"{shown(path)} does not exist or is not a file; give an annotation file (CSV or JSON)")
    reader = REGISTRY[layout] if layout else detect_layout(path)
    return reader.read(path, folder, limits)


__all__ = ["READERS", "REGISTRY", "split_spec", "detect_layout", "load_ground_truth"]
