"""What every layout reader does with what it parsed: collect images, labels and regions under the caps.

:class:`Builder` is the one place where an image is looked up by id (:class:`cxrdemo.datasets.files.ImageIndex`),
an instance is counted against the caps (per file and per image), a label from several readers is combined (a
class is positive when any reader marks it; disagreements are counted in the notes) and a mask becomes a lazily
decoded :class:`cxrdemo.datasets.base.Region`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from ..boxes import Box
from ..errors import InputError
from .base import GroundTruth, ImageEntry, Region
from .files import ImageIndex, shown, where
from .limits import Limits, limits
from .masks import PolygonMask, RunMask


def resolve_limits(given: "Mapping[str, int] | Limits | None") -> Limits:
    """The caps a reader uses: a :class:`Limits`, or :func:`limits` with ``given`` as overrides."""
    return given if isinstance(given, Limits) else limits(given)


@dataclass
class Builder:
    """Collects one file's ground truth; :meth:`finish` returns the :class:`GroundTruth`."""

    path: Path
    layout: str
    cap: Limits
    images: Path | None = None
    name: str = ""
    gt: GroundTruth = field(init=False)
    index: ImageIndex | None = field(init=False)
    _count: int = field(init=False, default=0)
    _disagree: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.gt = GroundTruth(self.name or self.path.name, self.layout)
        self.index = ImageIndex.build(self.images, self.cap)
        if self.index is not None and self.index.truncated:
            self.gt.notes.append(f"image lookup stopped after {self.cap.scan_files:,} files in {shown(self.index.root)}")

    def image(self, image_id: str, width: int | None = None, height: int | None = None, file: str | None = None) -> ImageEntry:
        """The entry of ``image_id`` (created on first sight; its file looked up by ``file`` or the id)."""
        entry = self.gt.images.get(image_id)
        if entry is None:
            found = None
            if self.index is not None:
                found = (self.index.find(file) if file else None) or self.index.find(image_id)
            entry = ImageEntry(image_id, found, width, height)
            self.gt.images[image_id] = entry
        elif width and height and not (entry.width and entry.height):
            entry = replace(entry, width=int(width), height=int(height))
            self.gt.images[image_id] = entry
        return entry

    def size(self, image_id: str) -> tuple[int, int] | None:
        """``(width, height)`` of a known image: stated, else from its file's header (then remembered;
        :meth:`GroundTruth.size_of`)."""
        return self.gt.size_of(image_id)

    def label(self, image_id: str, name: str, value: int) -> None:
        """State ``name`` for ``image_id``: 1 wins over 0 and -1 (any reader marking it), -1 over 0; a change of a
        stated value is counted as a disagreement between readers."""
        labs = self.gt.labels.setdefault(image_id, {})
        old = labs.get(name)
        if old is None:
            labs[name] = value
            return
        if old != value:
            self._disagree += 1
            labs[name] = 1 if 1 in (old, value) else -1

    def region(self, row: int | None, region: Region) -> None:
        """Add one instance, counted against the caps.

        Raises:
            InputError: more instances than ``cap.instances`` in the file or ``cap.instances_per_image`` on one image.
        """
        self._count += 1
        if self._count > self.cap.instances:
            raise InputError(f"{where(self.path, row)}: more than {self.cap.instances:,} instances; split the file")
        regions = self.gt.regions.setdefault(region.image_id, [])
        if len(regions) >= self.cap.instances_per_image:
            raise InputError(f"{where(self.path, row)}: more than {self.cap.instances_per_image:,} instances on image "
                             f"{region.image_id!r}; check the file")
        regions.append(region)

    def box(self, row: int | None, image_id: str, name: str, box: Box, reader: str | None = None) -> None:
        """Add a box region (``box`` in original pixels, xyxy) and label ``name`` positive."""
        if not (box.x2 > box.x1 and box.y2 > box.y1):
            raise InputError(f"{where(self.path, row)}: box {box.rounded(1)} has no area (x2 <= x1 or y2 <= y1); fix the row")
        labelled = Box(box.x1, box.y1, box.x2, box.y2, name)
        self.region(row, Region(image_id, name, labelled, reader or None))
        self.label(image_id, name, 1)

    def mask(self, row: int | None, image_id: str, name: str, mask: RunMask | PolygonMask, reader: str | None = None,
             box: Box | None = None) -> None:
        """Add a mask region (decoded on demand), its box the given one or the mask's bounds; label ``name``
        positive. An empty mask adds no region."""
        bounds = box if box is not None else mask.box
        if bounds is None or (isinstance(mask, RunMask) and mask.area == 0):
            return
        labelled = Box(bounds.x1, bounds.y1, bounds.x2, bounds.y2, name)
        self.region(row, Region(image_id, name, labelled, reader or None, (mask.height, mask.width), mask.decode))
        self.label(image_id, name, 1)

    def note(self, text: str) -> None:
        """A sentence for the report (what was left out and why)."""
        self.gt.notes.append(text)

    def finish(self) -> GroundTruth:
        """The ground truth, with notes on images not found and label disagreements."""
        if self._disagree:
            self.gt.notes.append(f"{self._disagree} label(s) differ between readers of one image; a class counts as "
                                 "positive when any reader marks it (uncertain when one says -1 and none says 1)")
        if self.index is not None:
            missing = sum(1 for e in self.gt.images.values() if e.path is None)
            if missing:
                self.gt.notes.append(f"{missing} of {len(self.gt.images)} image(s) not found in {shown(self.index.root)}")
        return self.gt


__all__ = ["Builder", "resolve_limits"]
