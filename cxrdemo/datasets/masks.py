"""Masks as data sets store them, parsed once (validated and bounded) and decoded on demand.

- COCO's compressed RLE (pycocotools' ``{"size": [h, w], "counts": str}``, used by COCO files and CheXlocalize):
  the counts are run lengths of alternating 0s and 1s (first a run of 0s, possibly empty) over the pixels in
  **column-major** order; each count is written in 5-bit groups, least significant first, as characters
  ``48 + group`` with bit ``0x20`` meaning "more groups follow" and bit ``0x10`` of the last group the sign; from
  the fourth count on, the stored value is the difference from the count two places before (:func:`coco_counts`).
  COCO's uncompressed RLE (``counts`` as a list of integers) is the same runs unencoded.
- SIIM-ACR's RLE (``train-rle.csv``): pairs ``offset length`` where each offset is counted from the end of the
  previous run (the first from pixel 0), over the pixels in column-major order; ``-1`` means no mask
  (:func:`siim_runs`).
- Polygons (COCO ``segmentation`` ``[[x1, y1, x2, y2, ...]]``, ChestX-Det / CheXlocalize ``[[x, y], ...]``):
  rasterised with the same rule as a box (:func:`cxrdemo.datasets.base.box_mask`): pixel ``(r, c)`` is inside when
  its centre ``(c + 0.5, r + 0.5)`` is inside (even-odd rule, edges half-open: an edge's upper end and the crossing
  point's right side are excluded), so a box written as a 4-vertex polygon gives exactly the box's mask.

Everything is parsed into a :class:`RunMask` or :class:`PolygonMask` whose ``box`` is known without decoding;
``decode()`` allocates the ``(h, w)`` boolean mask only when asked, after checking it against the pixel cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..boxes import Box
from ..errors import InputError
from .limits import Limits


class MaskFormatError(ValueError):
    """A mask string or polygon is malformed; the reader turns it into an :class:`InputError` naming the row."""


@dataclass(frozen=True)
class RunMask:
    """A mask as runs of 1s over the pixels of an ``(height, width)`` image in column-major order:
    ``starts[i]`` (flat index ``col * height + row``) and ``lengths[i]``, sorted and disjoint."""

    height: int
    width: int
    starts: np.ndarray
    lengths: np.ndarray

    @property
    def area(self) -> int:
        """Pixels in the mask."""
        return int(self.lengths.sum())

    @property
    def box(self) -> Box | None:
        """The mask's bounding box in pixel edges (``x2 = last column + 1``), ``None`` when empty; from the runs,
        without decoding."""
        if self.starts.size == 0:
            return None
        h = self.height
        ends = self.starts + self.lengths - 1
        c0, c1 = self.starts // h, ends // h
        r0, r1 = self.starts % h, ends % h
        one_col = c0 == c1
        top = np.where(one_col, r0, 0).min()
        bottom = np.where(one_col, r1, h - 1).max()
        return Box(float(c0.min()), float(top), float(c1.max() + 1), float(bottom + 1))

    def decode(self) -> np.ndarray:
        """The boolean ``(height, width)`` mask."""
        # +1 where a run starts, -1 where it ends; runs are disjoint, so the running sum is 0 or 1 (int8 holds it:
        # one byte per pixel, 50 MB at the 50 MP cap)
        flat = np.zeros(self.height * self.width, dtype=np.int8)
        flat[self.starts] = 1
        ends = self.starts + self.lengths
        flat[ends[ends < flat.size]] -= 1
        return np.cumsum(flat, dtype=np.int8).astype(bool).reshape(self.width, self.height).T


@dataclass(frozen=True)
class PolygonMask:
    """One or more polygons (each ``(n, 2)`` vertices ``x, y`` in pixels) on an ``(height, width)`` image; their
    union under the even-odd rule per polygon."""

    height: int
    width: int
    polygons: tuple[np.ndarray, ...]

    @property
    def box(self) -> Box | None:
        """The vertices' bounding box (``None`` when there is no polygon)."""
        if not self.polygons:
            return None
        allv = np.concatenate(self.polygons)
        return Box(float(allv[:, 0].min()), float(allv[:, 1].min()), float(allv[:, 0].max()), float(allv[:, 1].max()))

    def decode(self) -> np.ndarray:
        """The boolean ``(height, width)`` mask (see the module doc for the rule)."""
        out = np.zeros((self.height, self.width), dtype=bool)
        for poly in self.polygons:
            out |= rasterise_polygon(poly, self.height, self.width)
        return out


def _edges(poly: np.ndarray, height: int) -> tuple[np.ndarray, ...]:
    """Per non-horizontal edge: ``x0, y0, x1, y1`` and the rows ``[r0, r1)`` whose centre it crosses
    (``min(y) <= r + 0.5 < max(y)``), clipped to the image."""
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    keep = y0 != y1  # horizontal edges cross no row centre
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    r0 = np.clip(np.ceil(lo - 0.5), 0, height).astype(np.int64)
    r1 = np.clip(np.ceil(hi - 0.5), 0, height).astype(np.int64)
    return x0, y0, x1, y1, r0, np.maximum(r1, r0)


def crossings(poly: np.ndarray, height: int) -> int:
    """How many (edge, row) crossings rasterising ``poly`` on ``height`` rows computes: its cost, capped."""
    if len(poly) < 3:
        return 0
    *_, r0, r1 = _edges(poly, height)
    return int((r1 - r0).sum())


def rasterise_polygon(poly: np.ndarray, height: int, width: int) -> np.ndarray:
    """One polygon on a ``(height, width)`` grid: pixel ``(r, c)`` inside when its centre is (even-odd rule; an
    edge covers the rows whose centre ``y`` satisfies ``min(y) <= y < max(y)``; a row is filled over the centres
    ``x`` with ``x_a <= x < x_b`` between successive crossings). Vectorised over all crossings at once: time and
    memory grow with the crossings (:func:`crossings`, capped when the polygon is parsed) and the pixels."""
    out = np.zeros((height, width), dtype=bool)
    if len(poly) < 3:
        return out
    x0, y0, x1, y1, r0, r1 = _edges(poly, height)
    counts = r1 - r0
    if counts.sum() == 0:
        return out
    edge = np.repeat(np.arange(counts.size), counts)
    rows = r0[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts))
    yc = rows + 0.5
    xs = x0[edge] + (yc - y0[edge]) / (y1[edge] - y0[edge]) * (x1[edge] - x0[edge])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    # within a row the crossings pair up (a closed polygon crosses each row centre an even number of times):
    # fill [x_a, x_b) for the 1st-2nd, 3rd-4th ... crossings of the row; the pairs of one row are disjoint
    first = np.searchsorted(rows, rows, side="left")
    odd = ((np.arange(rows.size) - first) % 2) == 1
    xa, xb, rr = xs[np.flatnonzero(odd) - 1], xs[odd], rows[odd]
    ca = np.clip(np.ceil(xa - 0.5), 0, width).astype(np.int64)
    cb = np.clip(np.ceil(xb - 0.5), 0, width).astype(np.int64)
    fill = cb > ca
    diff = np.zeros((height, width + 1), dtype=np.int8)
    np.add.at(diff, (rr[fill], ca[fill]), 1)
    np.add.at(diff, (rr[fill], cb[fill]), -1)
    return np.cumsum(diff, axis=1, dtype=np.int8)[:, :width] > 0


# ------------------------------------------------------------------------------------------------------ parsing
def coco_counts(counts: str, cap: Limits) -> list[int]:
    """The run lengths of a COCO compressed RLE string (see the module doc).

    Raises:
        MaskFormatError: a character outside the alphabet, a truncated count, too long a string.
    """
    if len(counts) > cap.rle_chars:
        raise MaskFormatError(f"RLE string of {len(counts):,} characters; the cap is {cap.rle_chars:,}")
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise MaskFormatError("RLE string ends inside a count")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise MaskFormatError(f"character {counts[p]!r} at {p} is not COCO RLE (48..111)")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x -= 1 << (5 * k)  # sign-extend
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def coco_encode(mask: np.ndarray) -> dict[str, object]:
    """A boolean ``(h, w)`` mask as COCO compressed RLE ``{"size": [h, w], "counts": str}`` (tests and writers)."""
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    chars: list[str] = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return {"size": [int(h), int(w)], "counts": "".join(chars)}


def runs_from_counts(counts: Sequence[int], height: int, width: int, cap: Limits) -> RunMask:
    """A :class:`RunMask` from alternating 0/1 run lengths (first a run of 0s).

    Raises:
        MaskFormatError: a negative count, too many runs, or counts that do not add up to ``height * width``.
    """
    check_shape(height, width, cap)
    if len(counts) > 2 * cap.rle_runs:
        raise MaskFormatError(f"{len(counts):,} RLE counts; the cap is {2 * cap.rle_runs:,}")
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts):
        raise MaskFormatError("RLE counts must be whole numbers")
    arr = np.asarray(counts, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise MaskFormatError("negative RLE count")
    total = int(arr.sum())
    if total != height * width:
        raise MaskFormatError(f"RLE counts add up to {total:,} pixels, not {height} x {width} = {height * width:,}")
    bounds = np.concatenate([[0], np.cumsum(arr)])
    starts, lengths = bounds[1:-1:2], arr[1::2]
    keep = lengths > 0
    return RunMask(height, width, starts[keep], lengths[keep])


def siim_runs(text: str, height: int, width: int, cap: Limits) -> RunMask:
    """A :class:`RunMask` from a SIIM relative RLE string (pairs ``offset length``; see the module doc).

    Raises:
        MaskFormatError: an odd number of values, a non-integer, a negative value, a run past the image.
    """
    check_shape(height, width, cap)
    s = text.strip()
    if len(s) > cap.rle_chars:
        raise MaskFormatError(f"RLE string of {len(s):,} characters; the cap is {cap.rle_chars:,}")
    parts = s.split()
    if len(parts) % 2:
        raise MaskFormatError(f"{len(parts)} numbers; SIIM RLE is pairs of offset and length")
    if len(parts) // 2 > cap.rle_runs:
        raise MaskFormatError(f"{len(parts) // 2:,} runs; the cap is {cap.rle_runs:,}")
    try:
        values = np.array([int(v) for v in parts], dtype=np.int64).reshape(-1, 2)
    except ValueError:
        raise MaskFormatError("a value is not an integer") from None
    if values.size and values.min() < 0:
        raise MaskFormatError("a negative offset or length")
    offsets, lengths = values[:, 0], values[:, 1]
    # start_i = sum(offsets[:i+1]) + sum(lengths[:i])
    starts = np.cumsum(offsets) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if starts.size and int(starts[-1] + lengths[-1]) > height * width:
        raise MaskFormatError(f"a run ends past pixel {height * width:,} of a {width} x {height} image")
    keep = lengths > 0
    return RunMask(height, width, starts[keep], lengths[keep])


def polygon_mask(polygons: Sequence[object], height: int, width: int, cap: Limits, flat: bool) -> PolygonMask:
    """A :class:`PolygonMask` from COCO's flat ``[x1, y1, x2, y2, ...]`` lists (``flat``) or ``[[x, y], ...]``.

    Raises:
        MaskFormatError: too many polygons or vertices, a non-number, fewer than 3 vertices, an odd flat list.
    """
    check_shape(height, width, cap)
    if not isinstance(polygons, (list, tuple)):
        raise MaskFormatError("polygons must be a list")
    if len(polygons) > cap.polygons:
        raise MaskFormatError(f"{len(polygons):,} polygons; the cap is {cap.polygons:,}")
    out = []
    for poly in polygons:
        if not isinstance(poly, (list, tuple)):
            raise MaskFormatError("a polygon must be a list of vertices")
        n = len(poly) // 2 if flat else len(poly)
        if n > cap.polygon_vertices:
            raise MaskFormatError(f"a polygon of {n:,} vertices; the cap is {cap.polygon_vertices:,}")
        try:
            arr = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError):
            raise MaskFormatError("a vertex is not a number") from None
        if flat:
            if arr.ndim != 1 or arr.size % 2:
                raise MaskFormatError("a flat polygon needs an even number of coordinates")
            arr = arr.reshape(-1, 2)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise MaskFormatError("a vertex must be [x, y]")
        if not np.isfinite(arr).all():
            raise MaskFormatError("a vertex is not a finite number")
        if len(arr) < 3:
            raise MaskFormatError(f"a polygon of {len(arr)} vertices; it needs at least 3")
        out.append(arr)
    cost = sum(crossings(p, height) for p in out)
    if cost > cap.polygon_crossings:
        raise MaskFormatError(f"polygons crossing {cost:,} (edge, row) pairs; the cap is {cap.polygon_crossings:,}")
    return PolygonMask(height, width, tuple(out))


def check_shape(height: int, width: int, cap: Limits) -> None:
    """:class:`MaskFormatError` when a mask's size is not positive or exceeds ``cap.mask_pixels``."""
    if height <= 0 or width <= 0:
        raise MaskFormatError(f"mask size {width} x {height} is not positive")
    if height * width > cap.mask_pixels:
        raise MaskFormatError(f"mask of {width} x {height} pixels; the cap is {cap.mask_pixels:,} pixels")


def as_input_error(place: str, exc: MaskFormatError) -> InputError:
    """The one-line error of a malformed mask at ``place`` (``file, row N, field 'x'``)."""
    return InputError(f"{place}: {exc}")


__all__ = [
    "MaskFormatError", "RunMask", "PolygonMask", "rasterise_polygon", "crossings", "coco_counts", "coco_encode",
    "runs_from_counts", "siim_runs", "polygon_mask", "check_shape", "as_input_error",
]
