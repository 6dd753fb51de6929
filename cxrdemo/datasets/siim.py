"""SIIM-ACR Pneumothorax: ``train-rle.csv`` (``ImageId, EncodedPixels``: note the space before the second name and
before each value) with one row per pneumothorax instance; ``-1`` means the image has none.

The RLE is SIIM's relative form (pairs of offset from the end of the previous run and length) over the pixels in
column-major order (:func:`cxrdemo.datasets.masks.siim_runs`). The mask's size is the image's: read from the DICOM
header when the image is found, else SIIM's 1024 x 1024 (every image of the release), said in the notes. Images are
``{ImageId}.dcm`` (SOPInstanceUID).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import InputError
from .base import GroundTruth, Reader
from .build import Builder, resolve_limits
from .files import csv_rows, row_id, where
from .masks import MaskFormatError, as_input_error, siim_runs

SIIM_CLASS = "Pneumothorax"
#: Side of every image of the SIIM-ACR release (used when the DICOM is not at hand).
SIIM_SIDE = 1024


class SIIMReader(Reader):
    name = "siim"
    title = "SIIM-ACR Pneumothorax (train-rle.csv)"

    def sniff(self, path: Path, head: str) -> bool:
        cols = [h.strip() for h in head.splitlines()[0].split(",")] if head.strip() else []
        return cols[:2] == ["ImageId", "EncodedPixels"]

    def read(self, path: Path, images: Path | None = None, limits: Mapping[str, int] | None = None) -> GroundTruth:
        path = Path(path)
        b = Builder(path, self.name, resolve_limits(limits), images)
        _, rows = csv_rows(path, b.cap, ("ImageId", "EncodedPixels"))
        assumed = 0
        for n, row in rows:
            image_id = row_id(path, n, row, "ImageId")
            b.image(image_id)
            rle = row["EncodedPixels"]
            if rle == "-1":
                b.label(image_id, SIIM_CLASS, 0)
                continue
            if not rle:
                raise InputError(f"{where(path, n, 'EncodedPixels')}: empty; give the RLE or -1 for none")
            size = b.size(image_id)
            if size is None:
                size, assumed = (SIIM_SIDE, SIIM_SIDE), assumed + 1
            try:
                mask = siim_runs(rle, size[1], size[0], b.cap)
            except MaskFormatError as exc:
                raise as_input_error(where(path, n, "EncodedPixels"), exc) from None
            b.mask(n, image_id, SIIM_CLASS, mask)
        if assumed:
            b.note(f"{assumed} mask(s) decoded at SIIM's {SIIM_SIDE} x {SIIM_SIDE} (image not found to read its size)")
        return b.finish()


__all__ = ["SIIMReader", "SIIM_CLASS", "SIIM_SIDE"]
