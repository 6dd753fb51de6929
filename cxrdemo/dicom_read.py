"""Read a DICOM file's dataset within a memory budget: the declared pixel data is checked from the header before
anything is inflated or decoded, and Deflated Explicit VR Little Endian is inflated with a bounded decompressor.

A DICOM file can be small on disk and huge in memory: 4 MB of deflated zeros declaring 1000 frames of 2048x2048
16-bit pixels cost pydicom 9 GB and 38 s (issue 19), because pydicom inflates the whole file before reading its
first element. Here:

1. the file meta (group 0002, never deflated) gives the transfer syntax;
2. the header (every element before the pixel data) is read alone; for the deflated syntax only the first
   :data:`HEADER_BYTES` of the inflated stream are produced for it;
3. the caller's own header check runs (:mod:`cxrdemo.imaging`: the 50 MP limit per frame), then the declared pixel
   data is refused past the limit (:func:`pixel_byte_limit`, ``CXRDEMO_MAX_DICOM_MB``, default
   :data:`DEFAULT_MAX_PIXEL_MB` MiB) with one line: ``Rows x Columns x NumberOfFrames x bytes per sample x
   SamplesPerPixel``, all frames, where all frames are held in memory (native pixel data, and the deflated syntax,
   whose single stream holds every frame); one frame where frames are compressed one by one (JPEG, JPEG 2000, RLE...:
   only frame 1 is ever decoded, so a 160-frame study still shows its first frame);
4. only then the dataset is read; a deflated one is inflated to at most the limit plus :data:`HEADER_BYTES`, so a
   header that lies about the size is refused too.

Callers decode frame 1 only of a multi-frame file (:mod:`cxrdemo.imaging`): a friendlier answer than a refusal for
a modest cine or tomosynthesis file.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping
from typing import Any, Callable

from .errors import ImageError

#: Deflated Explicit VR Little Endian (DICOM PS3.5 A.5): the data set after the file meta is one raw deflate stream.
DEFLATED = "1.2.840.10008.1.2.1.99"
#: Transfer syntaxes whose frames are compressed one by one (pydicom decodes frame 1 alone): JPEG, JPEG-LS,
#: JPEG 2000, RLE, HTJ2K and the video syntaxes. Their UIDs start with these prefixes.
ENCAPSULATED_PREFIXES = ("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5")
#: The variable that sets the limit on declared pixel data, in MB (MiB).
LIMIT_ENV = "CXRDEMO_MAX_DICOM_MB"
#: Default limit on the pixel data a DICOM file may declare, all frames together, in MiB: one frame of the largest
#: image accepted (50 MP) at 16 bits is 95 MiB, in RGB 143 MiB; 256 MiB holds either with room to spare.
DEFAULT_MAX_PIXEL_MB = 256
#: Most bytes of the inflated stream read to find the header of a deflated file (a header is a few KB; 1 MiB
#: allows long private sequences).
HEADER_BYTES = 1 << 20


def pixel_byte_limit(environ: Mapping[str, str] | None = None) -> int:
    """The limit on declared pixel bytes: ``CXRDEMO_MAX_DICOM_MB`` MiB (a positive number), else the default.

    Raises:
        InputError: the variable is set but not a positive number of at most 1 TiB (NaN, infinity, text...).
    """
    from .envnumbers import env_number

    return int(env_number(LIMIT_ENV, DEFAULT_MAX_PIXEL_MB, environ, maximum=2**20) * 2**20)


def read_dataset(
    data: bytes, name: str, limit: int | None = None, check_header: Callable[[Any], None] | None = None
) -> Any:
    """The pydicom dataset of ``data``, its declared pixel data checked against ``limit`` bytes first.

    ``check_header(header)`` runs first on the header (a dataset without pixel data) and may raise. A deflated file
    comes back inflated, its file meta saying Explicit VR Little Endian (what its bytes now are).

    Raises:
        ImageError: not readable as DICOM, corrupt deflate data, or more pixel data declared (or inflated) than
            ``limit`` (default :func:`pixel_byte_limit`); one line each.
    """
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_preamble

    limit = pixel_byte_limit() if limit is None else limit
    fp = io.BytesIO(data)
    read_preamble(fp, True)
    file_meta = _read_file_meta_info(fp)
    syntax = str(file_meta.get("TransferSyntaxUID", "") or "")
    check = check_header or (lambda header: None)
    if syntax != DEFLATED:
        header = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        check(header)
        check_declared(header, name, limit, one_frame=syntax.startswith(ENCAPSULATED_PREFIXES))
        return pydicom.dcmread(io.BytesIO(data), force=True)
    body = memoryview(data)[fp.tell() :]  # no copy of the (possibly large) stream
    head = inflate(body, HEADER_BYTES, name, partial=True)
    header = pydicom.dcmread(io.BytesIO(head), force=True, stop_before_pixels=True)
    check(header)
    check_declared(header, name, limit)
    ds = pydicom.dcmread(io.BytesIO(inflate(body, limit + HEADER_BYTES, name)), force=True)
    file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta = file_meta
    return ds


def inflate(compressed: bytes | memoryview, cap: int, name: str, *, partial: bool = False) -> bytes:
    """Inflate a raw deflate stream to at most ``cap`` bytes (memory stays within ``cap``).

    ``partial``: return the first ``cap`` bytes (a header peek); else a stream that inflates to more than ``cap``
    bytes is refused (:class:`ImageError`), never inflated in full.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(compressed, cap + (0 if partial else 1))
    except zlib.error as exc:
        raise ImageError(f"{name}: its deflated DICOM data is corrupt ({exc}); export the file again") from None
    if not partial and (len(out) > cap or inflater.unconsumed_tail):
        raise ImageError(
            f"{name}: its deflated DICOM data inflates to more than {cap / 2**20:.0f} MB (more than its header "
            f"declares, or over the {LIMIT_ENV} limit); export one frame uncompressed"
        )
    return out


def declared_pixel_bytes(ds: Any, one_frame: bool = False) -> tuple[int, int]:
    """``(bytes, frames)``: what ``ds``'s header declares: rows x columns x frames x bytes per sample x samples
    per pixel (``one_frame``: frames counted as 1). A missing or unreadable value counts as 1."""

    def number(keyword: str, default: int) -> int:
        try:
            return max(1, int(getattr(ds, keyword, default) or default))
        except (TypeError, ValueError):
            return default

    frames = number("NumberOfFrames", 1)
    per_sample = (number("BitsAllocated", 8) + 7) // 8
    counted = 1 if one_frame else frames
    total = number("Rows", 1) * number("Columns", 1) * counted * per_sample * number("SamplesPerPixel", 1)
    return total, frames


def check_declared(ds: Any, name: str, limit: int, one_frame: bool = False) -> None:
    """:class:`ImageError` when ``ds``'s header declares more than ``limit`` bytes of pixel data (one line);
    ``one_frame``: only one frame is ever decoded, so one frame is what counts."""
    total, frames = declared_pixel_bytes(ds, one_frame)
    if total > limit:
        rows, cols = getattr(ds, "Rows", "?"), getattr(ds, "Columns", "?")
        what = "one frame is" if one_frame else "in all"
        raise ImageError(
            f"{name} declares {frames} frame(s) of {cols}x{rows} pixels, {total / 2**20:,.0f} MB of pixel data "
            f"({what}); the limit is {limit / 2**20:.0f} MB ({LIMIT_ENV}): export the frame to show as its own file"
        )
