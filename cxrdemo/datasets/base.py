"""The one interface every data-set reader returns: images, image-level labels and instance regions.

A reader (one module per layout in this folder) turns a data set's files into a :class:`GroundTruth`:

- :class:`ImageEntry`: an image id, where its file is (found by id with any supported extension), its size in
  pixels when the annotation file states it (else read from the image's header when needed);
- image-level labels: ``{image_id: {class name: 1 / 0 / -1}}`` in the data set's own words (``-1`` = uncertain,
  as CheXpert writes it; absent = not stated);
- :class:`Region`: one instance annotation, a box or a mask, in the **original pixels of the image file**, with its
  class name in the data set's own words and its reader (radiologist) id when the data set keeps one.

Each layout's coordinate convention (corners or x,y,w,h, NIH's 1024 frame, column-major RLE, polygons) is converted
once, in its reader; everything downstream sees original pixels, ``xyxy`` boxes and boolean masks.
This module imports neither torch nor any heavy library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..boxes import Box

#: label values: positive, negative, uncertain (CheXpert's -1)
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1


@dataclass(frozen=True)
class ImageEntry:
    """One image of a data set: its id, its file (``None`` when not found) and its size when known."""

    image_id: str
    path: Path | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Region:
    """One instance annotation in original pixels: a box, or a mask given by a decoder (decoded on demand).

    ``label`` is the data set's own class name; ``reader`` the radiologist's id (``None`` when the data set keeps
    none, e.g. a consensus). A mask region carries its bounding ``box`` too (for drawing and for box metrics);
    ``mask_shape`` is ``(height, width)`` of the image the mask belongs to.
    """

    image_id: str
    label: str
    box: Box | None = None
    reader: str | None = None
    mask_shape: tuple[int, int] | None = None
    decode: Callable[[], np.ndarray] | None = field(default=None, compare=False, repr=False)

    @property
    def is_mask(self) -> bool:
        """True when the region is a mask (its ``box`` is then the mask's bounding box)."""
        return self.decode is not None

    def mask(self, height: int, width: int) -> np.ndarray:
        """The region as a boolean ``(height, width)`` mask in the image's pixels: a mask as decoded (rescaled by
        nearest neighbour when the image has another size), a box rasterised (pixel ``(r, c)`` is inside when its
        centre ``(c + 0.5, r + 0.5)`` lies in the box)."""
        if self.decode is not None:
            m = np.asarray(self.decode(), dtype=bool)
            if m.shape != (height, width):
                rows = np.minimum((np.arange(height) + 0.5) * m.shape[0] / height, m.shape[0] - 1).astype(int)
                cols = np.minimum((np.arange(width) + 0.5) * m.shape[1] / width, m.shape[1] - 1).astype(int)
                m = m[rows][:, cols]
            return m
        if self.box is None:
            return np.zeros((height, width), dtype=bool)
        return box_mask(self.box, height, width)


def box_mask(box: Box, height: int, width: int) -> np.ndarray:
    """``box`` rasterised on a ``(height, width)`` grid: pixel ``(r, c)`` is inside when its centre is."""
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    inside_x = (cols >= box.x1) & (cols < box.x2)
    inside_y = (rows >= box.y1) & (rows < box.y2)
    return inside_y[:, None] & inside_x[None, :]


@dataclass
class GroundTruth:
    """What a reader returns: the images, their labels and their regions, plus what was left out and why."""

    name: str
    layout: str
    images: dict[str, ImageEntry] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    regions: dict[str, list[Region]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def regions_of(self, image_id: str) -> list[Region]:
        """The regions of one image (empty when it has none)."""
        return self.regions.get(image_id, [])

    def readers(self) -> list[str]:
        """The distinct reader ids, sorted (empty when the data set keeps none)."""
        return sorted({r.reader for rs in self.regions.values() for r in rs if r.reader is not None})

    def class_names(self) -> list[str]:
        """Every class name the data set uses (labels and regions), sorted, in its own words."""
        names = {n for labs in self.labels.values() for n in labs}
        names |= {r.label for rs in self.regions.values() for r in rs}
        return sorted(names)

    def size_of(self, image_id: str) -> tuple[int, int] | None:
        """``(width, height)`` of an image: as the annotation states it, else read from the image file's header
        (PNG/JPEG/DICOM, pixels not decoded), else ``None``."""
        entry = self.images.get(image_id)
        if entry is None:
            return None
        if entry.width and entry.height:
            return entry.width, entry.height
        if entry.path is None:
            return None
        from .files import header_size

        size = header_size(entry.path)
        if size is not None:
            self.images[image_id] = ImageEntry(entry.image_id, entry.path, size[0], size[1])
        return size


class Reader:
    """A data-set layout: ``sniff`` says whether a file is in this layout, ``read`` parses it.

    Subclasses set ``name`` (the prefix that forces the layout, e.g. ``vindr``) and ``title``. ``read`` receives
    the annotation file and the image folder (``None``: images are not looked up) and raises
    :class:`cxrdemo.errors.InputError` with one line naming the file, row and field for a malformed file.
    """

    name: str = ""
    title: str = ""

    def sniff(self, path: Path, head: str) -> bool:  # pragma: no cover - interface
        """True when ``path`` (whose first characters are ``head``) is in this layout."""
        raise NotImplementedError

    def read(self, path: Path, images: Path | None = None, limits: "Mapping[str, int] | None" = None) -> GroundTruth:  # pragma: no cover
        """Parse ``path`` into a :class:`GroundTruth`."""
        raise NotImplementedError


__all__: Sequence[str] = ("POSITIVE", "NEGATIVE", "UNCERTAIN", "ImageEntry", "Region", "box_mask", "GroundTruth", "Reader")
