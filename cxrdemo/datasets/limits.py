"""Caps on what a ground-truth file may make cxrdemo read, allocate or walk (listed in docs/security.md).

Every reader checks these before it allocates: the file's size before it is read, the number of rows and of
instances while it is parsed, an RLE string's length and run count and a polygon's vertices when a region is
parsed, a mask's pixels before it is decoded, and the files walked when images are looked up by id. Public mode
(:func:`cxrdemo.publicmode.is_public`) takes the tighter column. Torch-free; no module-level state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from ..publicmode import is_public


@dataclass(frozen=True)
class Limits:
    """One set of caps (see the module doc); :func:`limits` picks the local or the public set."""

    #: bytes of one annotation file (a real VinDr, CheXpert or SIIM table is 2-200 MB uncompressed)
    file_bytes: int
    #: data rows of one CSV / entries of one JSON list or object
    rows: int
    #: instance regions (boxes, masks) in one file
    instances: int
    #: instance regions on one image
    instances_per_image: int
    #: characters of one RLE string (COCO compressed counts or a SIIM row)
    rle_chars: int
    #: runs of one RLE mask
    rle_runs: int
    #: vertices of one polygon
    polygon_vertices: int
    #: polygons of one region
    polygons: int
    #: (edge, row) crossings to rasterise one region's polygons: the rasteriser's time and memory
    polygon_crossings: int
    #: pixels of one decoded mask (height x width)
    mask_pixels: int
    #: files walked when images are looked up by id
    scan_files: int
    #: folder depth walked below the image folder
    scan_depth: int


#: Local use: the largest public releases fit (CheXpert's 224k rows, VinDr's 68k boxes, SIIM's 12k rows).
LOCAL = Limits(
    file_bytes=1 << 30,
    rows=2_000_000,
    instances=1_000_000,
    instances_per_image=1_000,
    rle_chars=2_000_000,
    rle_runs=1_000_000,
    polygon_vertices=100_000,
    polygons=1_000,
    polygon_crossings=20_000_000,
    mask_pixels=50_000_000,
    scan_files=2_000_000,
    scan_depth=8,
)
#: Public mode (a server strangers reach): a few thousand images' worth.
PUBLIC = Limits(
    file_bytes=64 << 20,
    rows=200_000,
    instances=100_000,
    instances_per_image=200,
    rle_chars=200_000,
    rle_runs=100_000,
    polygon_vertices=10_000,
    polygons=100,
    polygon_crossings=2_000_000,
    mask_pixels=25_000_000,
    scan_files=50_000,
    scan_depth=4,
)


def limits(overrides: Mapping[str, int] | None = None, environ: Mapping[str, str] | None = None) -> Limits:
    """The caps in force: :data:`PUBLIC` in public mode, else :data:`LOCAL`, with ``overrides`` (field -> value)
    applied on top (tests use small caps); an unknown field name is a programming error (``TypeError``)."""
    base = PUBLIC if is_public(environ) else LOCAL
    if not overrides:
        return base
    values = asdict(base)
    for key, value in overrides.items():
        if key not in values:
            raise TypeError(f"unknown limit {key!r}; one of {', '.join(values)}")
        values[key] = int(value)
    return Limits(**values)


__all__ = ["Limits", "LOCAL", "PUBLIC", "limits"]
