"""Decode a radiograph file (PNG, JPEG, DICOM) into a :class:`Radiograph`: 8-bit grayscale pixels at original size.

Every radiograph is brought to one display convention, MONOCHROME2 (bright = dense), 8-bit:
- PNG/JPEG: 8- or 16-bit grayscale, RGB, RGBA, palette. Colour is converted with ITU-R 601 luma; 16-bit is scaled
  by its full range (``>> 8``), as NIH's 8-bit PNGs were made.
- DICOM (pydicom): rescale slope/intercept, then the VOI LUT or window centre/width when present (else the full
  range of stored values), MONOCHROME1 inverted.
The image size is checked from the header before any pixel is decoded (decompression bombs are refused); only
regular files are read, and never more than :data:`MAX_FILE_BYTES` (``/dev/zero`` or a FIFO cannot hang a caller).
Corruption that decoders tolerate silently is refused, so a damaged file never shows as a plausible wrong picture:
a PNG chunk with a bad CRC, a JPEG whose entropy-coded data holds reserved markers (garbage after the header), a
DICOM rescale that turns stored values into NaN/inf. Only frame 1 of a multi-frame DICOM is decoded, and a DICOM
whose header declares more pixel data than :func:`cxrdemo.dicom_read.pixel_byte_limit` (all frames) is refused
before anything is inflated (:mod:`cxrdemo.dicom_read`; deflated files are inflated with a bounded decompressor).
The format is read from the file's first bytes, never from its name (:func:`sniff_format`): only PNG, JPEG and
DICOM are decoded; TIFF, GIF, BMP, WebP and the like are refused with one line before any decoder sees them (a
44 MB TIFF of 450,000 tiny frames named ``.png`` would otherwise make Pillow count its frames, quadratic in their
number). Frames are never counted by walking the file: an animated PNG declares its count in its ``acTL`` chunk
(read from the bytes) and only its first frame is decoded; a multi-picture JPEG (MPO) shows its first picture.
:func:`check_image_file` runs the byte checks (format, file size, image size from the header) without decoding
pixels, so the CLI refuses a text file named ``.png`` before it imports torch.
Every failure raises :class:`ImageError` with a one-line message.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .dicom_read import read_dataset
from .errors import ImageError

#: Largest accepted image, in pixels (a 1024 px NIH film is 1.0 MP; a 4280x3520 CR plate is 15 MP).
MAX_PIXELS = 50_000_000
#: Largest accepted file, in bytes.
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Smallest side accepted: anything smaller cannot be a radiograph worth showing.
MIN_SIDE = 16
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
#: File suffixes of the formats cxrdemo reads (folders are scanned for these; uploads are checked against them).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg") + DICOM_SUFFIXES


@dataclass
class Radiograph:
    """A decoded radiograph.

    Attributes:
        pixels: ``(height, width)`` uint8 array, MONOCHROME2 (bright = dense), original size.
        name: file name (used to look up NIH ground truth), e.g. ``"00013118_008.png"``.
        format: ``"png"``, ``"jpeg"``, ``"dicom"``...
        bit_depth: bits per sample of the stored image.
        metadata: facts worth showing (DICOM photometric interpretation, window used, modality...).
    """

    pixels: np.ndarray
    name: str
    format: str
    bit_depth: int = 8
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` as PIL spells it."""
        return (self.width, self.height)


def load_image(source: str | os.PathLike | bytes | BinaryIO, name: str | None = None) -> Radiograph:
    """Decode ``source`` (a path, bytes or a binary file object) into a :class:`Radiograph`.

    ``name`` overrides the file name recorded (useful for bytes uploads).
    """
    data, name = _read_bytes(source, name)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); give a PNG, JPEG or DICOM radiograph")
    fmt = sniff_format(data[:HEAD_BYTES], name)
    if fmt == "dicom":
        return _load_dicom(data, name)
    return _load_raster(data, name, fmt)


#: Bytes read to tell a file's format (the DICOM magic sits at bytes 128..131).
HEAD_BYTES = 132
#: Bytes of a PNG whose chunk checksums :func:`check_image_file` verifies (a chunk cut short there is skipped).
PNG_HEADER_BYTES = 1 << 16
#: Formats recognised from their first bytes but not read by cxrdemo: (magic, offset, name).
_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"II*\x00", 0, "TIFF"), (b"MM\x00*", 0, "TIFF"), (b"II+\x00", 0, "TIFF"), (b"MM\x00+", 0, "TIFF"),
    (b"GIF87a", 0, "GIF"), (b"GIF89a", 0, "GIF"), (b"WEBP", 8, "WebP"), (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000"), (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"%PDF", 0, "PDF"), (b"ftypheic", 4, "HEIC"), (b"ftypavif", 4, "AVIF"), (b"8BPS", 0, "Photoshop"),
    (b"\x97JB2", 0, "JBIG2"), (b"\x76\x2f\x31\x01", 0, "OpenEXR"),
)
#: BMP info-header sizes (offset 14): with the ``BM`` magic they tell a bitmap from text that starts with "BM".
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)


def sniff_format(head: bytes, name: str) -> str:
    """The format of a file from its first :data:`HEAD_BYTES` bytes: ``"png"``, ``"jpeg"`` or ``"dicom"``.

    The name is used only for a DICOM file without its 128-byte preamble (``.dcm`` and no other format's magic).

    Raises:
        ImageError: another image format (named: "x.png is a TIFF image; use a PNG, JPEG or DICOM radiograph") or
            bytes of no image format.
    """
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[128:132] == b"DICM":
        return "dicom"
    other = next((kind for magic, at, kind in _OTHER_FORMATS if head[at : at + len(magic)] == magic), None)
    if other is None and head.startswith(b"BM") and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in _BMP_HEADER_SIZES:
        other = "BMP"
    if other is not None:
        raise ImageError(f"{name} is a {other} image; use a PNG, JPEG or DICOM radiograph")
    if name.lower().endswith(DICOM_SUFFIXES):
        return "dicom"  # no preamble: pydicom decides (a text file named .dcm is refused there)
    raise ImageError(f"{name} is not an image cxrdemo can read; give a PNG, JPEG or DICOM radiograph")


def check_image_file(path: str | os.PathLike) -> str:
    """The checks of an image file that need no pixel decoding, torch-free (the CLI runs them before it loads the
    model): a regular file, not empty, within :data:`MAX_FILE_BYTES`, of a format cxrdemo reads (from its bytes),
    and for PNG and JPEG an image size within :data:`MAX_PIXELS` and :data:`MIN_SIDE` from the header. Returns the
    format (:func:`sniff_format`). A DICOM header is checked when the file is loaded.

    Raises:
        ImageError: one line, as :func:`load_image` would raise it.
    """
    path = Path(path)
    size = check_image_path(path)
    name = path.name
    if size == 0:
        raise ImageError(f"{name} is empty (0 bytes); give a PNG, JPEG or DICOM radiograph")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{name} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    try:
        with path.open("rb") as fh:
            head = fh.read(PNG_HEADER_BYTES)
            fmt = sniff_format(head[:HEAD_BYTES], name)
            if fmt == "png":
                _check_png_crc(head, name)  # the chunks in the first 64 KiB (IHDR...), as load_image would say
            if fmt != "dicom":
                fh.seek(0)
                with _decoding(name), Image.open(fh, formats=[_PIL_FORMATS[fmt]]) as img:  # the header only
                    _check_size(*img.size, name)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    return fmt


def _read_bytes(source: str | os.PathLike | bytes | BinaryIO, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(f"{name or 'upload'} is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        return data, name or "upload"
    if hasattr(source, "read"):
        data = source.read(MAX_FILE_BYTES + 1)  # type: ignore[union-attr]
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(f"{name or 'upload'} is larger than {MAX_FILE_BYTES // 2**20} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
        return data, name or Path(getattr(source, "name", "upload")).name
    path = Path(source)
    label = name or path.name
    size = check_image_path(path)
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{label} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    try:
        with path.open("rb") as fh:
            data = fh.read(min(size, MAX_FILE_BYTES) + 1)  # bounded even if the file grows while it is read
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{label} is larger than {MAX_FILE_BYTES // 2**20} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    return data, label


def check_image_path(path: Path) -> int:
    """The size in bytes of the regular file ``path``; :class:`ImageError` when it is missing, a folder, unreadable
    or a device, pipe or socket (checked before anything is opened; the CLI calls it before it loads torch)."""
    if not path.exists():
        raise ImageError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise ImageError(f"{path} is a folder; give an image file")
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        # A device (/dev/zero) or a FIFO would block or never end: refuse before opening it.
        raise ImageError(f"{path} is not a regular file (a device, pipe or socket); give an image file")
    return info.st_size


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the limit is {MAX_PIXELS / 1e6:.0f} MP: "
            "downsample it first"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name} is only {width}x{height} pixels; a radiograph needs at least {MIN_SIDE} px per side")


# --------------------------------------------------------------------------------------------------- PNG / JPEG
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_crc(data: bytes, name: str) -> int:
    """Refuse a PNG any of whose chunks fails its CRC-32; return its frame count (``acTL`` of an animated PNG, else 1).

    Pillow checks the CRC of the header chunks only, and skips those of the image data (IDAT): a file damaged in
    transit could otherwise decode to a wrong picture. A chunk cut short is left to the decoder (truncated file).
    """
    pos, frames = len(_PNG_SIGNATURE), 1
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            return frames
        (stored,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[pos + 4 : end]) & 0xFFFFFFFF != stored:
            chunk = kind.decode("latin-1") if kind.isalpha() else repr(kind)
            raise ImageError(
                f"{name} is a corrupt PNG (bad checksum in its {chunk} chunk); re-export the image and try again"
            )
        if kind == b"acTL" and length >= 4:
            frames = max(1, struct.unpack(">I", data[pos + 8 : pos + 12])[0])
        if kind == b"IEND":
            return frames
        pos = end + 4
    return frames


#: JPEG markers with no length field (TEM, RSTn, SOI, EOI).
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}


#: Frame markers (SOF0..SOF15 less DHT, JPG, DAC): one frame per image, so none may follow its first scan.
_JPEG_FRAME = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}


def _jpeg_corrupt(name: str, what: str) -> ImageError:
    return ImageError(f"{name} is a corrupt or truncated JPEG ({what}); re-export the image and try again")


def _check_jpeg_markers(data: bytes, name: str) -> None:
    """Refuse a JPEG whose marker stream no encoder writes: libjpeg, through Pillow, would show noise instead.

    libjpeg turns garbage in the entropy-coded data into a noise picture with only a warning that Pillow drops. Such
    garbage almost surely holds marker bytes ``FF xx`` that no valid JPEG can: a reserved marker (``FF 02`` ..
    ``FF BF``), a second SOI or frame header after the first scan, or a segment whose length runs past the end of the
    file (inside a scan an ``FF`` is followed by ``00``, a restart marker or a real marker). Segments are skipped by
    their length; data after EOI (padding, a second MPO picture) is ignored; a file cut inside its entropy-coded data
    is left to the decoder, which reports it truncated.
    """
    pos, n, scanned = 2, len(data), False
    while pos + 1 < n:
        if data[pos] != 0xFF:  # stray bytes between segments: libjpeg skips them with a warning; so do we
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return
        if 0x02 <= marker <= 0xBF or (scanned and (marker == 0xD8 or marker in _JPEG_FRAME)):
            raise _jpeg_corrupt(name, f"marker FF{marker:02X} at byte {pos} cannot occur in a valid file")
        if marker == 0x00 or marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if pos + 4 > n:
            return
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > n:
            raise _jpeg_corrupt(name, f"segment FF{marker:02X} at byte {pos} runs past the end of the file")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: skip the entropy-coded data up to the next marker
            scanned = True
            while True:
                nxt = data.find(b"\xff", pos)
                if nxt < 0 or nxt + 1 >= n:
                    return
                follower = data[nxt + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7:  # byte stuffing or a restart marker
                    pos = nxt + 2
                elif follower == 0xFF:  # fill byte before a marker
                    pos = nxt + 1
                else:
                    pos = nxt
                    break


#: The Pillow plugin of each raster format cxrdemo reads (``Image.open`` tries no other).
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


@contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Turn what Pillow raises on a bad file into one-line :class:`ImageError` messages."""
    try:
        yield
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to decode safely; the limit is {MAX_PIXELS / 1e6:.0f} MP") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image cxrdemo can read; give a PNG, JPEG or DICOM radiograph") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name} is corrupt or truncated ({str(exc)[:80]}); re-export the image and try again") from None


def _load_raster(data: bytes, name: str, fmt: str) -> Radiograph:
    """Decode a PNG or JPEG (``fmt`` from :func:`sniff_format`); only its first frame or picture."""
    frames = 1
    if fmt == "png":
        frames = _check_png_crc(data, name)
    else:
        _check_jpeg_markers(data, name)
    with _decoding(name), Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]]) as img:
        shown = (img.format or fmt).lower()
        width, height = img.size
        _check_size(width, height, name)
        bit_depth = _bit_depth(img)
        mode = img.mode
        # Decode fully inside the guard: truncated or corrupt data fails here, not later. Never img.n_frames or
        # img.seek: Pillow's frame count walks the whole file; the default image is frame 1 (APNG) or picture 1 (MPO).
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        pixels = _png_gray8_fast(data, img) if frames == 1 else None
        if pixels is None:
            img.load()
            pixels = _to_gray8(img)
    meta: dict[str, Any] = {"mode": mode}
    if frames > 1:
        meta["frames"] = frames
        meta["note"] = f"multi-frame file: showing frame 1 of {frames}"
    return Radiograph(pixels, name, "jpeg" if shown == "mpo" else shown, bit_depth, meta)


_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png_gray8_fast(data: bytes, img: Image.Image) -> np.ndarray | None:
    """The pixels of a complete 8-bit grayscale PNG (NIH's format) through OpenCV's libpng, else ``None``.

    Lossless, so the pixels are exactly Pillow's, at about half the cost (Pillow's PNG decoding is the slowest
    stage of the pipeline after the network: bench/RESULTS.md). Only files that end with their IEND chunk (not truncated)
    and carry no transparency are taken; anything else, or anything libpng refuses, returns ``None`` and Pillow
    decodes it as before (and reports any error the usual way).
    """
    if (
        img.format != "PNG"
        or img.mode != "L"
        or "transparency" in img.info
        or data[12:16] != b"IHDR"
        or data[24:26] != b"\x08\x00"  # bit depth 8, colour type 0 (grayscale)
        or not data.endswith(_PNG_IEND)
    ):
        return None
    import cv2

    try:
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape != (img.height, img.width):
        return None
    return pixels


def _bit_depth(img: Image.Image) -> int:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return 16
    if img.mode in ("I", "F"):
        return 32
    return 8


def _to_gray8(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            return (arr / 257.0).round().clip(0, 255).astype(np.uint8)
        return _window_to_uint8(arr, float(arr.min()), float(arr.max()))
    if mode == "LA":
        return np.asarray(img.getchannel("L"), dtype=np.uint8).copy()
    if mode in ("RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "RGB"):
        if mode in ("P", "PA"):
            img = img.convert("RGBA")
        if img.mode == "RGBA":
            # Composite on black: NIH's RGBA files carry an opaque alpha; transparency means "no signal".
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(background, img)
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    raise ImageError(f"image mode {mode} is not supported; save the radiograph as 8- or 16-bit grayscale PNG")


def _window_to_uint8(arr: np.ndarray, low: float, high: float) -> np.ndarray:
    if not np.isfinite(low) or not np.isfinite(high):
        finite = arr[np.isfinite(arr)]
        if finite.size == 0:
            return np.zeros(arr.shape, dtype=np.uint8)
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(arr.shape, dtype=np.uint8)
    out = (np.nan_to_num(arr, nan=low, posinf=high, neginf=low) - low) * (255.0 / (high - low))
    return out.clip(0, 255).round().astype(np.uint8)


# -------------------------------------------------------------------------------------------------------- DICOM
def _load_dicom(data: bytes, name: str) -> Radiograph:
    try:
        from pydicom.errors import InvalidDicomError
    except ImportError:  # pragma: no cover - pydicom is in requirements.txt
        raise ImageError("reading DICOM needs pydicom; pip install -r requirements.txt") from None
    try:
        # The size is checked from the header, before anything is inflated or decoded.
        ds = read_dataset(data, name, check_header=lambda header: _check_dicom_size(header, name, True))
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ImageError(f"{name} is not a readable DICOM file ({exc.__class__.__name__}); export it again") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = str(getattr(ds, "Modality", "") or getattr(ds, "SOPClassUID", "unknown"))
        raise ImageError(f"{name} is a DICOM file without pixel data ({sop}); use a DICOM image of the radiograph")
    _check_dicom_size(ds, name)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    try:
        if frames > 1:
            # Decode frame 1 only: a compressed multi-frame file can hold gigabytes of pixels in a few megabytes.
            ds.pixel_array_options(index=0)
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types (RuntimeError, NotImplementedError, ValueError...)
        raise ImageError(_dicom_decode_message(ds, name, exc)) from None
    meta: dict[str, Any] = {"photometric": photometric, "modality": str(getattr(ds, "Modality", ""))}
    if frames > 1:
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        if arr.ndim == (4 if samples > 1 else 3):  # a decoder that ignored the frame index
            arr = arr[0]
        meta["note"] = f"multi-frame DICOM: showing frame 1 of {frames}"
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR") or arr.ndim == 3:
        pixels = _dicom_colour_to_gray(ds, arr, photometric)
        meta["window"] = "colour converted to luma"
        return Radiograph(pixels, name, "dicom", int(getattr(ds, "BitsStored", 8) or 8), meta)
    pixels, window = _dicom_to_uint8(ds, arr, name)
    meta["window"] = window
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
        meta["inverted"] = True
    return Radiograph(pixels, name, "dicom", int(getattr(ds, "BitsStored", 16) or 16), meta)


def _check_dicom_size(ds: Any, name: str, header_only: bool = False) -> None:
    """The image size limits on ``ds``'s Rows and Columns; ``header_only``: skip a header without them (the file
    may have no pixel data at all, which is reported once the whole file is read)."""
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if header_only and not (rows and cols):
        return
    _check_size(cols, rows, name)


def _dicom_decode_message(ds: Any, name: str, exc: BaseException) -> str:
    """One line on why pydicom could not decode the pixels, with advice that fits the transfer syntax."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_name = getattr(ts, "name", str(ts)) if ts is not None else "unknown transfer syntax"
    first = " ".join(str(exc).split())[:160] if str(exc).strip() else exc.__class__.__name__
    if ts is not None and getattr(ts, "is_compressed", False):
        advice = "install a decoder (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg) or export it uncompressed"
    else:  # uncompressed: no decoder would help, the header and the pixel data disagree
        advice = "its pixel data is missing, truncated or inconsistent with its header: export it again"
    return f"{name}: cannot decode DICOM pixels ({ts_name}: {first}); {advice}"


def _dicom_colour_to_gray(ds: Any, arr: np.ndarray, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, convert_color_space

    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    elif photometric.startswith("YBR"):
        arr = convert_color_space(arr, photometric, "RGB")
    arr = np.asarray(arr)
    if arr.ndim == 2:
        return _window_to_uint8(arr.astype(np.float64), float(arr.min()), float(arr.max()))
    rgb = arr[..., :3].astype(np.float64)
    if rgb.max() > 255:
        rgb = rgb * (255.0 / rgb.max())
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    return luma.clip(0, 255).round().astype(np.uint8)


def _dicom_to_uint8(ds: Any, arr: np.ndarray, name: str = "DICOM file") -> tuple[np.ndarray, str]:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    if np.issubdtype(np.asarray(arr).dtype, np.integer) and not np.isfinite(values).all():
        # Integer pixels only become NaN/inf through a bogus rescale: showing a blank film would be a wrong picture.
        slope, intercept = getattr(ds, "RescaleSlope", 1), getattr(ds, "RescaleIntercept", 0)
        raise ImageError(
            f"{name}: its DICOM rescale (slope {slope}, intercept {intercept}) turns the stored pixels into NaN or infinity; "
            "fix RescaleSlope/RescaleIntercept in the header or export the image again"
        )
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        try:
            windowed = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64)
            low, high = _voi_range(ds, windowed)
            return _window_to_uint8(windowed, low, high), _describe_window(ds)
        except (ValueError, TypeError, IndexError, KeyError):
            pass  # a malformed VOI falls back to the full range below
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return _window_to_uint8(values, low, high), "full range of stored values"


def _voi_range(ds: Any, windowed: np.ndarray) -> tuple[float, float]:
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    # apply_voi_lut maps a window to the output range of the pixel representation; use what it produced.
    return float(np.nanmin(windowed)), float(np.nanmax(windowed))


def _describe_window(ds: Any) -> str:
    if "VOILUTSequence" in ds:
        return "VOI LUT"
    centre = ds.WindowCenter[0] if getattr(ds.WindowCenter, "VM", 1) > 1 else ds.WindowCenter
    width = ds.WindowWidth[0] if getattr(ds.WindowWidth, "VM", 1) > 1 else ds.WindowWidth
    return f"window C={float(centre):g} W={float(width):g}"
