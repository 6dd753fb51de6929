"""Decode a radiograph file (PNG, JPEG, DICOM) into a :class:`Radiograph`: 8-bit grayscale pixels at original size.

Every radiograph is brought to one display convention, MONOCHROME2 (bright = dense), 8-bit:
- PNG/JPEG: 8- or 16-bit grayscale, RGB, RGBA, palette. Colour is converted with ITU-R 601 luma; 16-bit is scaled
  by its full range (``>> 8``), as NIH's 8-bit PNGs were made.
- DICOM (pydicom): rescale slope/intercept, then the VOI LUT or window centre/width when present (else the full
  range of stored values), MONOCHROME1 inverted.
The image size is checked from the header before any pixel is decoded (decompression bombs are refused).
Every failure raises :class:`ImageError` with a one-line message.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import ImageError

#: Largest accepted image, in pixels (a 1024 px NIH film is 1.0 MP; a 4280x3520 CR plate is 15 MP).
MAX_PIXELS = 50_000_000
#: Largest accepted file, in bytes.
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Smallest side accepted: anything smaller cannot be a radiograph worth showing.
MIN_SIDE = 16
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


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
        raise ImageError(f"{name} is empty (0 bytes); upload a PNG, JPEG or DICOM radiograph")
    if _looks_like_dicom(data, name):
        return _load_dicom(data, name)
    return _load_raster(data, name)


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
    if not path.exists():
        raise ImageError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise ImageError(f"{path} is a folder; give an image file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{label} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB")
    try:
        return path.read_bytes(), label
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _looks_like_dicom(data: bytes, name: str) -> bool:
    return data[128:132] == b"DICM" or name.lower().endswith(DICOM_SUFFIXES)


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name} is {width}x{height} pixels ({width * height / 1e6:.0f} MP); the limit is {MAX_PIXELS / 1e6:.0f} MP: "
            "downsample it first"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name} is only {width}x{height} pixels; a radiograph needs at least {MIN_SIDE} px per side")


# --------------------------------------------------------------------------------------------------- PNG / JPEG
def _load_raster(data: bytes, name: str) -> Radiograph:
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "unknown").lower()
            if fmt not in ("png", "jpeg", "tiff", "bmp", "webp", "gif"):
                raise ImageError(f"{name} is a {fmt.upper()} image; upload PNG, JPEG or DICOM")
            width, height = img.size
            _check_size(width, height, name)
            frames = getattr(img, "n_frames", 1)
            bit_depth = _bit_depth(img)
            mode = img.mode
            # Decode fully inside the guard: truncated or corrupt data fails here, not later.
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            img.load()
            pixels = _to_gray8(img)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to decode safely; the limit is {MAX_PIXELS / 1e6:.0f} MP") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image cxrdemo can read; upload a PNG, JPEG or DICOM radiograph") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name} is corrupt or truncated ({str(exc)[:80]}); re-export the image and upload it again") from None
    meta: dict[str, Any] = {"mode": mode}
    if frames > 1:
        meta["frames"] = frames
        meta["note"] = f"multi-frame file: showing frame 1 of {frames}"
    return Radiograph(pixels, name, fmt, bit_depth, meta)


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
    out = (np.nan_to_num(arr, nan=low) - low) * (255.0 / (high - low))
    return out.clip(0, 255).round().astype(np.uint8)


# -------------------------------------------------------------------------------------------------------- DICOM
def _load_dicom(data: bytes, name: str) -> Radiograph:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:  # pragma: no cover - pydicom is in requirements.txt
        raise ImageError("reading DICOM needs pydicom; pip install -r requirements.txt") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ImageError(f"{name} is not a readable DICOM file ({exc.__class__.__name__}); export it again") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        sop = str(getattr(ds, "Modality", "") or getattr(ds, "SOPClassUID", "unknown"))
        raise ImageError(f"{name} is a DICOM file without pixel data ({sop}); upload a DICOM image of the radiograph")
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    _check_size(cols, rows, name)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types (RuntimeError, NotImplementedError, ValueError...)
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", str(ts)) if ts is not None else "unknown transfer syntax"
        first = str(exc).splitlines()[0][:100] if str(exc) else exc.__class__.__name__
        raise ImageError(
            f"{name}: cannot decode DICOM pixels ({ts_name}: {first}); install a decoder "
            "(pip install pylibjpeg pylibjpeg-libjpeg) or export it uncompressed"
        ) from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    meta: dict[str, Any] = {"photometric": photometric, "modality": str(getattr(ds, "Modality", ""))}
    if frames > 1:
        arr = arr[0]
        meta["note"] = f"multi-frame DICOM: showing frame 1 of {frames}"
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR") or arr.ndim == 3:
        pixels = _dicom_colour_to_gray(ds, arr, photometric)
        meta["window"] = "colour converted to luma"
        return Radiograph(pixels, name, "dicom", int(getattr(ds, "BitsStored", 8) or 8), meta)
    pixels, window = _dicom_to_uint8(ds, arr)
    meta["window"] = window
    if photometric == "MONOCHROME1":
        pixels = 255 - pixels
        meta["inverted"] = True
    return Radiograph(pixels, name, "dicom", int(getattr(ds, "BitsStored", 16) or 16), meta)


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


def _dicom_to_uint8(ds: Any, arr: np.ndarray) -> tuple[np.ndarray, str]:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
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
