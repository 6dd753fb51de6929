"""Ground-truth regions for the audit: one image's regions grouped into what each figure is scored against, and
how well the readers agree with each other (numpy only; no torch).

The audit's ground truth, per image, is a list of :class:`cxrdemo.datasets.base.Region` (a box or a mask, with its
class and its reader). NIH's box list enters through :func:`sample_regions` (reader ``None``), every other data set
through its reader (:mod:`cxrdemo.datasets`).

The rule for several readers (:data:`READER_RULES`), for every plausibility figure (pointing game, energy in the
region, mask IoUs, CAM-box IoU, model-box IoU):

- ``per_reader`` (the default): for one image and one class, each reader's regions of that class are united into
  that reader's truth; the figure is computed against each reader's truth and the readers' values are averaged, so
  every (image, class) counts once, whatever the number of readers. It scores the map against one radiologist at a
  time: the same unit as the inter-reader reference (one radiologist against another), so the two compare like for
  like.
- ``union``: every reader's regions of that class are united into one truth (what cheXlocalize does with the
  several contours of a pathology on one radiograph); a larger target than any one reader's.

Regions without a reader id form one reader (``None``), so for a data set without readers (NIH, RSNA) both rules
give the same truth: the union of the image's regions of that class (one NIH box per class and image).

Inter-reader agreement (:func:`reader_agreement`), on an (image, class) that at least two readers marked: for every
unordered pair of readers, the IoU of their masks; for every ordered pair (a, b), the pointing game of a's centre
against b's mask (a's centre: the pixel holding the centre of mass of a's mask, for a box its centre) and the
energy of a's mask, read as a uniform map, inside b's mask (``|a & b| / |a|``). Each is averaged over the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..boxes import Box
from ..datasets.base import Region, box_mask

if TYPE_CHECKING:
    from ..datasets.samples import Sample
    from ..models.geometry import FilmView

#: The rules for several readers, default first.
READER_RULES: tuple[str, ...] = ("per_reader", "union")
DEFAULT_READER_RULE = READER_RULES[0]
#: The agreement metrics, and the plausibility metric each one is the human reference of.
AGREEMENT_METRICS: dict[str, str] = {
    "pointing_game": "pointing_game",
    "energy_in_box": "energy_in_box",
    "iou": "mask_iou_otsu",
}


def check_rule(rule: str) -> str:
    """``rule`` checked against :data:`READER_RULES` (ValueError naming the choices otherwise)."""
    if rule not in READER_RULES:
        raise ValueError(f"reader rule {rule!r} is not one of {', '.join(READER_RULES)}")
    return rule


def sample_regions(sample: "Sample", width: int, height: int) -> list[Region]:
    """An NIH :class:`~cxrdemo.datasets.samples.Sample`'s boxes as regions in the pixels of a ``width`` x
    ``height`` copy (reader ``None``): the one place where NIH's boxes enter the audit."""
    return [Region(sample.name, b.label, box=b, reader=None) for b in sample.boxes_in_pixels(width, height)]


@dataclass(frozen=True)
class Truth:
    """What one case is scored against: one class on one image, one truth per reader (``union``: one in all).

    ``readers``: the reader ids (``None`` for regions without one, or for the union); ``regions``: each reader's
    regions (all visible to the model); ``index``: the position of the class's first region among the image's
    regions (the case's ``box_index``).
    """

    label: str
    readers: tuple[str | None, ...]
    regions: tuple[tuple[Region, ...], ...]
    index: int

    @property
    def single_box(self) -> Box | None:
        """The box when the truth is one box of one reader (scored on the BOX path, as before masks); else None."""
        if len(self.regions) == 1 and len(self.regions[0]) == 1 and not self.regions[0][0].is_mask and self.regions[0][0].box is not None:
            return self.regions[0][0].box
        return None

    def boxes(self) -> list[Box]:
        """Per reader, the bounding box of its regions (for the box-vs-box IoUs and the gallery)."""
        return [bounding_box(rs, self.label) for rs in self.regions]

    def masks(self, height: int, width: int) -> list[np.ndarray]:
        """Per reader, the union of its regions' masks on a ``(height, width)`` grid."""
        return [union_mask(rs, height, width) for rs in self.regions]


def bounding_box(regions: Sequence[Region], label: str = "") -> Box:
    """The smallest box holding every region's box."""
    boxes = [r.box for r in regions if r.box is not None]
    if not boxes:
        return Box(0.0, 0.0, 0.0, 0.0, label)
    return Box(min(b.x1 for b in boxes), min(b.y1 for b in boxes), max(b.x2 for b in boxes), max(b.y2 for b in boxes), label)


def union_mask(regions: Sequence[Region], height: int, width: int) -> np.ndarray:
    """The union of the regions' masks (``Region.mask``) on a ``(height, width)`` grid."""
    out = np.zeros((int(height), int(width)), dtype=bool)
    for r in regions:
        out |= r.mask(int(height), int(width))
    return out


def visible_region(region: Region, view: "FilmView", height: int, width: int) -> Region | None:
    """The part of ``region`` the model saw (a box through ``view.visible``; a mask cut to the view and dropped when
    less than half of it is left, the box rule), or ``None``."""
    if view.full:
        return region
    if not region.is_mask:
        if region.box is None:
            return None
        seen = view.visible(region.box)
        return None if seen is None else Region(region.image_id, region.label, box=seen, reader=region.reader)
    from ..models.geometry import MIN_VISIBLE_FRACTION

    full = region.mask(height, width)
    cut = full & box_mask(Box(view.x0, view.y0, view.x1, view.y1), height, width)
    kept = int(np.count_nonzero(cut))
    if kept == 0 or kept < MIN_VISIBLE_FRACTION * int(np.count_nonzero(full)):
        return None
    return Region(region.image_id, region.label, box=_mask_box(cut, region.label), reader=region.reader,
                  mask_shape=(height, width), decode=_Fixed(cut))  # fmt: skip


@dataclass(frozen=True)
class _Fixed:
    """A decoder that returns a mask already decoded."""

    mask: np.ndarray

    def __call__(self) -> np.ndarray:
        return self.mask


def _mask_box(mask: np.ndarray, label: str) -> Box:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return Box(float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1), label)


def group_truths(regions: Sequence[Region], classes: Sequence[str], rule: str = DEFAULT_READER_RULE) -> list[Truth]:
    """One :class:`Truth` per class of ``classes`` that ``regions`` mark, in the order of first appearance."""
    check_rule(rule)
    out: list[Truth] = []
    wanted = set(classes)
    firsts: dict[str, int] = {}
    for k, r in enumerate(regions):
        if r.label in wanted and r.label not in firsts:
            firsts[r.label] = k
    for label, first in firsts.items():
        mine = [r for r in regions if r.label == label]
        if rule == "union":
            out.append(Truth(label, (None,), (tuple(mine),), first))
            continue
        readers = list(dict.fromkeys(r.reader for r in mine))
        out.append(Truth(label, tuple(readers), tuple(tuple(r for r in mine if r.reader == a) for a in readers), first))
    return out


def centre_pixel(mask: np.ndarray) -> tuple[int, int] | None:
    """The pixel ``(row, col)`` holding the centre of mass of ``mask`` (pixel centres ``r + 0.5``), ``None`` when
    empty. For a rasterised box it is the box's centre pixel."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    r = int(np.floor(rows.mean() + 0.5))
    c = int(np.floor(cols.mean() + 0.5))
    return min(r, mask.shape[0] - 1), min(c, mask.shape[1] - 1)


def reader_agreement(masks: Sequence[np.ndarray]) -> dict[str, float] | None:
    """How well readers agree on one (image, class): per :data:`AGREEMENT_METRICS` the mean over reader pairs (see
    the module doc), plus ``n_readers``; ``None`` with fewer than two readers."""
    masks = [np.asarray(m, dtype=bool) for m in masks]
    if len(masks) < 2:
        return None
    counts = [int(np.count_nonzero(m)) for m in masks]
    ious, hits, energies = [], [], []
    for a in range(len(masks)):
        centre = centre_pixel(masks[a])
        for b in range(len(masks)):
            if a == b:
                continue
            inter = int(np.count_nonzero(masks[a] & masks[b]))
            if a < b:
                union = counts[a] + counts[b] - inter
                ious.append(inter / union if union > 0 else 0.0)
            hits.append(float(centre is not None and bool(masks[b][centre])))
            energies.append(inter / counts[a] if counts[a] > 0 else 0.0)
    return {"pointing_game": float(np.mean(hits)), "energy_in_box": float(np.mean(energies)), "iou": float(np.mean(ious)),
            "n_readers": float(len(masks))}  # fmt: skip
