"""A corpus of bad inputs, generated at test time (nothing here is committed, nothing is cut from shared images).

:func:`build_corpus` writes every case into a temporary folder and returns a list of :class:`Case`. A case is one
hostile or odd input (an image file, a weights source, or user ground-truth boxes) with what it must give:

- :data:`VALID`: a finite, sane result (probabilities in [0, 1], boxes inside the image...). Image cases may also carry
  a ``check`` on the decoded :class:`~cxrdemo.imaging.Radiograph` proving it is the right picture (a 16-bit PNG
  decodes to the film it was made from, a MONOCHROME1 DICOM to its negative...).
- ``Expect(SomeCxrDemoError, "regex")``: that typed error, with a one-line message matching ``regex`` (what was
  wrong) and saying what to do.

Cases name the surfaces they apply to (``api``: :func:`load_image` / :func:`load_model` / ``Predictor.analyse``;
``cli``: ``python -m cxrdemo predict``; ``app``: the app's ``predict`` handler) and may expect something else on one
surface (the app's upload control takes PNG, JPEG and DICOM only, so a GIF the API reads is refused there).
``known_holes`` names surfaces where a case is known to fail, with the reason: tests mark those ``xfail(strict)``.

Every image is drawn by :func:`synthetic_film` (a procedural chest-like picture), so the corpus needs no shared data.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, PngImagePlugin

from cxrdemo.errors import BoxError, ConfigError, CxrDemoError, ImageError, WeightsError
from cxrdemo.imaging import Radiograph

SURFACES: tuple[str, ...] = ("api", "cli", "app")
#: An unknown Hub repository (never created by anyone): used with the network off.
UNKNOWN_REPO = "cxrdemo-corpus/no-such-model"


@dataclass(frozen=True)
class Expect:
    """What a case must give: a valid result (``error is None``) or ``error`` with a message matching ``match``."""

    error: type[CxrDemoError] | None = None
    match: str = ""

    @property
    def valid(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return "valid" if self.valid else f"{self.error.__name__}({self.match!r})"


VALID = Expect()


@dataclass(frozen=True)
class Case:
    """One bad input and its expectation.

    Attributes:
        name: short id (used as the pytest id).
        kind: ``"image"``, ``"weights"`` or ``"truth"``.
        expect: the expectation on every surface not in ``overrides``.
        image: the radiograph file given (for weights and truth cases: the corpus' good film).
        weights: the weights source given (``None``: the good small model).
        truth: user ground-truth boxes ``(x1, y1, x2, y2, label)``, original pixels.
        sha256: a sha256 pin given with the weights (API ``sha256=``, CLI ``--sha256``).
        env: environment variables set while the case runs (Hub offline, unreachable endpoint...).
        surfaces: where the case applies.
        overrides: surface -> expectation, where a surface legitimately differs.
        known_holes: surface -> why it is known to fail there (tests mark it ``xfail(strict=True)``).
        check: a fidelity check of the decoded radiograph (valid image cases).
        marker: a file that must not exist after the case (a pickle's payload would create it).
    """

    name: str
    kind: str
    expect: Expect
    image: Path
    weights: str | None = None
    truth: tuple[tuple[float, float, float, float, str], ...] | None = None
    sha256: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    surfaces: tuple[str, ...] = SURFACES
    overrides: Mapping[str, Expect] = field(default_factory=dict)
    known_holes: Mapping[str, str] = field(default_factory=dict)
    check: Callable[[Radiograph], None] | None = None
    marker: Path | None = None

    def expectation(self, surface: str) -> Expect:
        """The expectation on ``surface``."""
        return self.overrides.get(surface, self.expect)

    def truth_text(self) -> str:
        """The ground truth as the app's text control takes it: ``x1, y1, x2, y2, Class`` per line."""
        return "\n".join(", ".join(str(v) for v in box) for box in (self.truth or ()))


# ================================================================================================ pictures
def synthetic_film(height: int = 256, width: int = 256) -> np.ndarray:
    """A procedural chest-like radiograph ``(height, width)`` uint8 spanning exactly 0..255 (no real pixels)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    img = 0.55 + 0.25 * v  # brighter towards the abdomen
    for cx in (0.3, 0.7):  # two dark lungs
        img -= 0.35 * np.exp(-(((u - cx) / 0.16) ** 2 + ((v - 0.45) / 0.28) ** 2))
    img += 0.3 * np.exp(-(((u - 0.5) / 0.07) ** 2))  # mediastinum and spine
    img += 0.06 * np.sin(v * 40.0) * np.exp(-(((u - 0.5) / 0.35) ** 2))  # ribs
    img += 0.2 * np.exp(-(((u - 0.62) / 0.05) ** 2 + ((v - 0.4) / 0.05) ** 2))  # a "nodule"
    img = (img - img.min()) / (img.max() - img.min())
    return np.round(img * 255.0).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_bomb(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header says ``width`` x ``height`` (8-bit gray) with almost no image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_with_bad_crc(png: bytes, chunk: bytes) -> bytes:
    """``png`` with the CRC of its first ``chunk`` flipped (the chunk's data untouched)."""
    at = png.index(chunk)
    (length,) = struct.unpack(">I", png[at - 4 : at])
    crc_at = at + 4 + length
    out = bytearray(png)
    out[crc_at] ^= 0xFF
    return bytes(out)


def _jpeg_header_bomb(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its SOF0 frame header saying ``width`` x ``height``."""
    at = jpeg.index(b"\xff\xc0")
    out = bytearray(jpeg)
    out[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def _jpeg_garbage_after_header(jpeg: bytes, seed: int = 5) -> bytes:
    """The headers of ``jpeg`` (through the start-of-scan segment), then random bytes, then EOI."""
    sos = jpeg.index(b"\xff\xda")
    (length,) = struct.unpack(">H", jpeg[sos + 2 : sos + 4])
    garbage = np.random.default_rng(seed).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    return jpeg[: sos + 2 + length] + garbage + b"\xff\xd9"


def _similar(a: np.ndarray, b: np.ndarray, min_corr: float = 0.98) -> None:
    assert a.shape == b.shape, f"decoded shape {a.shape}, expected {b.shape}"
    corr = float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])
    assert corr >= min_corr, f"decoded picture differs from the source (correlation {corr:.3f} < {min_corr})"


def _exact(expected: np.ndarray) -> Callable[[Radiograph], None]:
    def check(r: Radiograph) -> None:
        assert r.pixels.shape == expected.shape, f"decoded shape {r.pixels.shape}, expected {expected.shape}"
        diff = int(np.abs(r.pixels.astype(int) - expected.astype(int)).max())
        assert diff <= 1, f"decoded pixels differ from the source by up to {diff}"

    return check


def _like(expected: np.ndarray, min_corr: float = 0.98) -> Callable[[Radiograph], None]:
    return lambda r: _similar(r.pixels, expected, min_corr)


def _negative_of(expected: np.ndarray) -> Callable[[Radiograph], None]:
    return lambda r: _similar(255 - r.pixels.astype(int), expected)


def _frame_one(expected: np.ndarray, frames: int) -> Callable[[Radiograph], None]:
    def check(r: Radiograph) -> None:
        _similar(r.pixels, expected)
        assert f"frame 1 of {frames}" in str(r.metadata.get("note", "")), f"no multi-frame note in {r.metadata}"

    return check


def _shape(height: int, width: int) -> Callable[[Radiograph], None]:
    def check(r: Radiograph) -> None:
        assert (r.height, r.width) == (height, width), f"decoded {r.width}x{r.height}, expected {width}x{height}"

    return check


def _constant(value: int) -> Callable[[Radiograph], None]:
    def check(r: Radiograph) -> None:
        assert np.all(r.pixels == value), f"expected a constant {value} picture"

    return check


# ================================================================================================ DICOM
def _dicom_dataset(path: Path, transfer_syntax: str, sop_class: str | None = None):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class or SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "CORPUS"
    return ds


def _dicom_encapsulated(path: Path, frames: Sequence[bytes], rows: int, cols: int, transfer_syntax: str) -> Path:
    """An 8-bit MONOCHROME2 DICOM whose pixel data is the encapsulated compressed ``frames``."""
    from pydicom.encaps import encapsulate

    ds = _dicom_dataset(path, transfer_syntax)
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(list(frames))
    ds["PixelData"].VR = "OB"
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _dicom_structured_report(path: Path) -> Path:
    """A Basic Text SR: a DICOM file that is a report, not an image."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian

    ds = _dicom_dataset(path, ExplicitVRLittleEndian, BasicTextSRStorage)
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.TextValue = "Synthetic report: no image here."
    ds.ContentSequence = DicomSequence([item])
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _edit_dicom(src: Path, dst: Path, edit: Callable[[object], None]) -> Path:
    import pydicom

    ds = pydicom.dcmread(str(src))
    edit(ds)
    ds.save_as(str(dst))
    return dst


# ================================================================================================ weights
class PickleBomb:
    """Unpickling this creates ``marker`` (through ``open(marker, "w")``): proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: D105 - the point of the class
        return (open, (str(self.marker), "w"))


def _copy_model(model_dir: Path, dst: Path, *, checksum: bool = True) -> Path:
    shutil.copytree(model_dir, dst)
    if not checksum:
        (dst / "model.safetensors.sha256").unlink(missing_ok=True)
    return dst


def _edit_config(folder: Path, edit: Callable[[dict], None]) -> Path:
    data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    edit(data)
    (folder / "config.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def _edit_tensors(folder: Path, edit: Callable[[dict], None]) -> Path:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))
    return folder


def _first_conv(state: dict) -> None:
    key = next(k for k, v in state.items() if k.endswith("weight") and v.ndim == 4)
    state[key].fill_(3.0e38)  # finite, but the first activations overflow to inf and the rest to NaN


def _one_nan(state: dict) -> None:
    state["class_head.fc.weight"][0, 0] = float("nan")


# ================================================================================================ the corpus
def build_corpus(root: Path, model_dir: Path) -> list[Case]:
    """Write every case under ``root`` (a fresh temporary folder) and return them.

    ``model_dir`` is a good, small model folder (config.json, model.safetensors and its .sha256); weights cases are
    spoilt copies of it.
    """
    root.mkdir(parents=True, exist_ok=True)
    img_dir, w_dir = root / "images", root / "weights"
    img_dir.mkdir(exist_ok=True)
    w_dir.mkdir(exist_ok=True)
    film = synthetic_film()
    film_img = Image.fromarray(film)
    png = _encode(film_img, "PNG")
    jpeg = _encode(film_img, "JPEG", quality=92)
    good = img_dir / "film.png"
    good.write_bytes(png)

    def put(name: str, data: bytes | str) -> Path:
        path = img_dir / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    cases: list[Case] = []

    def image(name: str, path: Path, expect: Expect, **kw: object) -> None:
        cases.append(Case(name, "image", expect, path, **kw))  # type: ignore[arg-type]

    refused_by_upload = {"app": Expect(ImageError, "files are not accepted")}

    # ---------------------------------------------------------------------------------------- raster files
    image("zero_byte_png", put("empty.png", b""), Expect(ImageError, "empty"))
    image("text_named_png", put("notes.png", "This is a text file, not a radiograph.\n" * 20), Expect(ImageError, "not an image"))
    image("truncated_png", put("truncated.png", png[: len(png) // 2]), Expect(ImageError, "corrupt or truncated"))
    image("png_bad_crc_idat", put("bad_crc.png", _png_with_bad_crc(png, b"IDAT")), Expect(ImageError, "bad checksum in its IDAT"))
    image("png_bad_crc_ihdr", put("bad_crc_header.png", _png_with_bad_crc(png, b"IHDR")), Expect(ImageError, "bad checksum in its IHDR"))
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * (48 * 2**20), zip=True)  # 48 MB of text in a ~50 kB zTXt chunk
    image("png_ztxt_bomb", put("ztxt_bomb.png", _encode(film_img, "PNG", pnginfo=info)), Expect(ImageError, "corrupt|too large"))
    image("png_header_bomb_20000", put("bomb.png", _png_header_bomb(20000, 20000)), Expect(ImageError, r"limit is \d+ MP"))
    image("jpeg_header_bomb_20000", put("bomb.jpg", _jpeg_header_bomb(jpeg, 20000, 20000)), Expect(ImageError, r"limit is \d+ MP"))
    image("jpeg_garbage_after_header", put("garbage.jpg", _jpeg_garbage_after_header(jpeg)), Expect(ImageError, "corrupt or truncated JPEG .*cannot occur"))
    image("jpeg_truncated", put("truncated.jpg", jpeg[: len(jpeg) * 2 // 3]), Expect(ImageError, "corrupt or truncated"))
    trailing = jpeg + np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    image("jpeg_junk_after_end", put("trailing.jpg", trailing), VALID, check=_like(film))
    image("jpeg_cmyk", put("cmyk.jpg", _encode(film_img.convert("CMYK"), "JPEG", quality=95)), VALID, check=_like(film))
    image("png_16bit", put("sixteen.png", _encode(Image.fromarray(film.astype(np.uint16) * 257), "PNG")), VALID, check=_exact(film))
    rgba = np.dstack([film, film, film, np.full_like(film, 255)])
    image("png_rgba", put("rgba.png", _encode(Image.fromarray(rgba, "RGBA"), "PNG")), VALID, check=_exact(film))
    image("png_palette", put("palette.png", _encode(film_img.convert("P"), "PNG")), VALID, check=_exact(film))
    image("png_gray_alpha", put("la.png", _encode(film_img.convert("LA"), "PNG")), VALID, check=_exact(film))
    bilevel = film_img.convert("1")  # dithered: compare with Pillow's own rendering of the same bits
    image("png_bilevel", put("bilevel.png", _encode(bilevel, "PNG")), VALID, check=_exact(np.asarray(bilevel.convert("L"))))
    image("png_1x1", put("one.png", _encode(Image.new("L", (1, 1), 128), "PNG")), Expect(ImageError, r"1x1 pixels.*at least"))
    image("png_thin_400x8", put("thin.png", _encode(Image.new("L", (400, 8), 128), "PNG")), Expect(ImageError, r"400x8 pixels.*at least"))
    image("png_16x16_smallest", put("tiny16.png", _encode(Image.fromarray(synthetic_film(16, 16)), "PNG")), VALID, check=_shape(16, 16))
    image("png_wide_4000x200", put("wide.png", _encode(Image.fromarray(synthetic_film(200, 4000)), "PNG")), VALID, check=_shape(200, 4000))
    image("png_tall_200x4000", put("tall.png", _encode(Image.fromarray(synthetic_film(4000, 200)), "PNG")), VALID, check=_shape(4000, 200))
    image("png_constant_zero", put("black.png", _encode(Image.new("L", (256, 256), 0), "PNG")), VALID, check=_constant(0))
    image("png_constant_white_16bit", put("white16.png", _encode(Image.fromarray(np.full((256, 256), 65535, np.uint16)), "PNG")), VALID, check=_constant(255))
    image("png_named_jpg", put("really_a_png.jpg", png), VALID, check=_exact(film))
    frames = [film_img, Image.fromarray(255 - film), Image.fromarray(film // 2)]
    # Only PNG, JPEG and DICOM are read, whatever the name says; other formats are refused from their first bytes
    # (a multi-frame TIFF is never opened: Pillow's frame count walks the whole file).
    apng = _encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image("apng_animated", put("animated.png", apng), VALID, check=_frame_one(film, 3))
    gif = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image("gif_animated", put("animated.gif", gif), Expect(ImageError, "is a GIF image; use a PNG, JPEG or DICOM"), overrides=refused_by_upload)
    tiff = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    image("tiff_multiframe", put("stack.tif", tiff), Expect(ImageError, "is a TIFF image; use a PNG, JPEG or DICOM"), overrides=refused_by_upload)
    image("tiff_named_png", put("stack.png", tiff), Expect(ImageError, "stack.png is a TIFF image; use a PNG, JPEG or DICOM"))
    floats = film.astype(np.float32)
    floats[:4, :4] = np.nan
    image("tiff_float", put("float.tif", _encode(Image.fromarray(floats, "F"), "TIFF")), Expect(ImageError, "is a TIFF image"), overrides=refused_by_upload)
    image("bmp", put("film.bmp", _encode(film_img, "BMP")), Expect(ImageError, "is a BMP image; use a PNG, JPEG or DICOM"), overrides=refused_by_upload)
    image("bmp_named_jpg", put("film_bmp.jpg", _encode(film_img, "BMP")), Expect(ImageError, "film_bmp.jpg is a BMP image"))
    image("ico_unsupported", put("icon.ico", _encode(film_img, "ICO")), Expect(ImageError, "ICO image.*use a PNG, JPEG or DICOM"), overrides=refused_by_upload)
    folder_png = img_dir / "folder.png"
    folder_png.mkdir()
    image("folder_named_png", folder_png, Expect(ImageError, "is a folder"))
    image("missing_file", img_dir / "does_not_exist.png", Expect(ImageError, "does not exist"), surfaces=("api", "cli"))
    if Path("/dev/zero").exists():
        image("dev_zero", Path("/dev/zero"), Expect(ImageError, "not a regular file"), surfaces=("api", "cli"))
    if hasattr(os, "mkfifo"):
        fifo = img_dir / "pipe.png"
        os.mkfifo(fifo)
        image("fifo", fifo, Expect(ImageError, "not a regular file"), surfaces=("api", "cli"))

    # ------------------------------------------------------------------------------------------------ DICOM
    from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless

    from dicom_fixtures import write_dicom

    twelve = film.astype(np.uint16) * 16  # 12-bit stored values, full range 0..4080
    d_plain = write_dicom(img_dir / "plain.dcm", twelve, bits=12)
    image("dicom_monochrome2_12bit", d_plain, VALID, check=_exact(film))
    image("dicom_no_suffix", write_dicom(img_dir / "IM000001", twelve, bits=12), VALID, check=_exact(film))
    image("dicom_monochrome1", write_dicom(img_dir / "mono1.dcm", twelve, bits=12, photometric="MONOCHROME1"), VALID, check=_negative_of(film))
    image("dicom_windowed", write_dicom(img_dir / "window.dcm", twelve, bits=12, window=(2040, 4080)), VALID, check=_like(film))
    image("dicom_window_width_zero", write_dicom(img_dir / "window0.dcm", twelve, bits=12, window=(2040, 0)), VALID, check=_like(film))
    image("dicom_rgb", write_dicom(img_dir / "rgb.dcm", np.dstack([film] * 3)), VALID, check=_like(film))
    image("dicom_constant_zero", write_dicom(img_dir / "black.dcm", np.zeros((256, 256), np.uint16), bits=12), VALID, check=_constant(0))
    image("dicom_no_pixel_data", write_dicom(img_dir / "nopixels.dcm", twelve, with_pixels=False), Expect(ImageError, "without pixel data"))
    image("dicom_structured_report", _dicom_structured_report(img_dir / "report.dcm"), Expect(ImageError, r"without pixel data \(SR\)"))
    image("dicom_jpeg_baseline", _dicom_encapsulated(img_dir / "jpeg.dcm", [jpeg], 256, 256, JPEGBaseline8Bit), VALID, check=_like(film))
    image(
        "dicom_jpegls_no_decoder",
        _dicom_encapsulated(img_dir / "jpegls.dcm", [jpeg], 256, 256, JPEGLSLossless),
        Expect(ImageError, "cannot decode DICOM pixels.*JPEG-LS.*install a decoder"),
    )
    # 160 frames of 2048x2048 in ~8 MB: decoding them all would allocate 640 MB; only frame 1 may be decoded.
    big = synthetic_film(2048, 2048)
    image(
        "dicom_multiframe_jpeg_bomb",
        _dicom_encapsulated(img_dir / "frames.dcm", [_encode(Image.fromarray(big), "JPEG", quality=10)] * 160, 2048, 2048, JPEGBaseline8Bit),
        VALID,
        check=_frame_one(big, 160),
    )

    def truncate_pixels(ds) -> None:
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]

    def header_bomb(ds) -> None:
        ds.Rows, ds.Columns = 20000, 20000

    def zero_rows(ds) -> None:
        ds.Rows = 0

    def bogus_rescale(ds) -> None:
        ds.RescaleSlope, ds.RescaleIntercept = 1e308, 0

    def drop_planar(ds) -> None:
        del ds.PlanarConfiguration

    image("dicom_truncated_pixels", _edit_dicom(d_plain, img_dir / "cut.dcm", truncate_pixels), Expect(ImageError, "truncated.*export it again"))
    image("dicom_header_bomb_20000", _edit_dicom(d_plain, img_dir / "bomb.dcm", header_bomb), Expect(ImageError, r"20000x20000 pixels .*limit"))
    image("dicom_zero_rows", _edit_dicom(d_plain, img_dir / "rows0.dcm", zero_rows), Expect(ImageError, "at least"))
    image("dicom_bogus_rescale", _edit_dicom(d_plain, img_dir / "rescale.dcm", bogus_rescale), Expect(ImageError, "rescale.*NaN or infinity"))
    image("dicom_rgb_no_planar_config", _edit_dicom(img_dir / "rgb.dcm", img_dir / "rgb_bad.dcm", drop_planar), Expect(ImageError, "cannot decode DICOM pixels"))
    garbage = np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    image("dicom_garbage", put("garbage.dcm", garbage), Expect(ImageError, "DICOM"))

    # --------------------------------------------------------------------------------------------- weights
    def weights(name: str, source: str | Path, expect: Expect, **kw: object) -> None:
        cases.append(Case(name, "weights", expect, good, weights=str(source), **kw))  # type: ignore[arg-type]

    def spoilt(name: str, *, checksum: bool = False) -> Path:
        return _copy_model(model_dir, w_dir / name, checksum=checksum)

    folder = spoilt("no_config")
    (folder / "config.json").unlink()
    weights("config_missing", folder, Expect(ConfigError, "no config.json"))
    folder = spoilt("bad_json")
    (folder / "config.json").write_text('{"architecture": "mobilenet_v3_small", ', encoding="utf-8")
    weights("config_malformed_json", folder, Expect(ConfigError, "not valid JSON"))
    folder = spoilt("json_list")
    (folder / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    weights("config_not_an_object", folder, Expect(ConfigError, "JSON object"))
    weights("config_unknown_backbone", _edit_config(spoilt("backbone"), lambda c: c.update(architecture="resnet9000")), Expect(ConfigError, "unknown backbone 'resnet9000'"))
    weights("config_class_count_mismatch", _edit_config(spoilt("classes"), lambda c: c.update(classes=c["classes"][:10])), Expect(ConfigError, "does not match config.json.*10 classes"))
    weights("config_unknown_key", _edit_config(spoilt("key"), lambda c: c.update(colour="red")), Expect(ConfigError, "unknown keys"))
    weights("config_mean_is_text", _edit_config(spoilt("mean"), lambda c: c.update(mean="abc")), Expect(ConfigError, "'mean' must be a list of numbers"))
    weights("config_thresholds_list", _edit_config(spoilt("thresholds"), lambda c: c.update(thresholds=[0.5, 0.5])), Expect(ConfigError, "thresholds"))
    weights("config_version_text", _edit_config(spoilt("version"), lambda c: c.update(format_version="two")), Expect(ConfigError, "config.json"))
    weights("config_negative_layer", _edit_config(spoilt("hidden"), lambda c: c.update(box_hidden=[-1])), Expect(ConfigError, "box_hidden"))
    folder = spoilt("no_weights")
    (folder / "model.safetensors").unlink()
    weights("weights_file_missing", folder, Expect(WeightsError, "no model.safetensors"))
    folder = spoilt("truncated")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    weights("safetensors_truncated", folder, Expect(WeightsError, "not a readable safetensors"))
    folder = spoilt("tampered", checksum=True)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-100:-90] = bytes(10)  # tensor values changed, the file still parses: only the checksum can tell
    (folder / "model.safetensors").write_bytes(bytes(data))
    weights("safetensors_tampered_checksum", folder, Expect(WeightsError, "sha256 .*expected"))
    folder = spoilt("header")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:24] = b"\xff" * 16
    (folder / "model.safetensors").write_bytes(bytes(data))
    weights("safetensors_corrupt_header", folder, Expect(WeightsError, "not a readable safetensors"))
    weights("safetensors_nan_values", _edit_tensors(spoilt("nan"), _one_nan), Expect(WeightsError, "NaN or infinite values"))
    weights("safetensors_overflowing_values", _edit_tensors(spoilt("overflow"), _first_conv), Expect(WeightsError, "NaN or infinite outputs"))
    folder = spoilt("bad_checksum_file", checksum=True)
    (folder / "model.safetensors.sha256").write_text("not-a-digest  model.safetensors\n", encoding="utf-8")
    weights("checksum_file_malformed", folder, Expect(WeightsError, "does not hold a sha256 digest"))
    weights("sha256_pin_mismatch", model_dir, Expect(WeightsError, "expected 0{12}"), sha256="0" * 64, surfaces=("api", "cli"))
    weights("sha256_pin_not_hex", model_dir, Expect(WeightsError, "not a sha256 digest"), sha256="abc", surfaces=("api", "cli"))

    # Pickles: each would create its marker if it were ever unpickled.
    marker = root / "UNPICKLED-pth"
    evil = w_dir / "evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": PickleBomb(marker)}))
    weights("pickle_pth_file", evil, Expect(WeightsError, "pickle checkpoint.*safetensors only"), marker=marker)
    marker = root / "UNPICKLED-bin"
    folder = spoilt("pickle_bin")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(PickleBomb(marker)))
    weights("pickle_bin_in_folder", folder, Expect(WeightsError, "pytorch_model.bin is a pickle"), marker=marker)
    marker = root / "UNPICKLED-renamed"
    folder = spoilt("pickle_renamed")
    (folder / "model.safetensors").write_bytes(pickle.dumps(PickleBomb(marker)))
    weights("pickle_renamed_safetensors", folder, Expect(WeightsError, "not a readable safetensors"), marker=marker)
    marker = root / "UNPICKLED-pt"
    evil_pt = w_dir / "evil.pt"
    import torch

    torch.save({"model": PickleBomb(marker)}, str(evil_pt))
    weights("pickle_torch_save_pt", evil_pt, Expect(WeightsError, "pickle checkpoint"), marker=marker)
    weights("weights_source_is_an_image", good, Expect(WeightsError, "is a file"))

    # Hub sources, network off: never a download attempt.
    offline = {"HF_HUB_OFFLINE": "1"}
    unreachable = {"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"}  # port 9 (discard): nothing listens
    weights("hub_id_bad_syntax", "not a hub id!", Expect(WeightsError, "neither a folder nor a Hub id"), env=offline)
    weights("hub_id_trailing_at", "owner/name@", Expect(WeightsError, "Hub id owner/name"), env=offline)
    weights(
        "hub_id_too_long",
        "o" * 300 + "/" + "n" * 300,
        Expect(WeightsError, "does not exist"),
        env=offline,
    )
    weights("hub_unknown_repo_offline", UNKNOWN_REPO, Expect(WeightsError, f"HF_HUB_OFFLINE is set and {UNKNOWN_REPO} is not in the local Hub cache"), env=offline)
    weights("hub_unknown_repo_unreachable", UNKNOWN_REPO + "@v1", Expect(WeightsError, f"cannot be reached and {UNKNOWN_REPO}@v1"), env=unreachable)

    # ------------------------------------------------------------------------------------ user ground truth
    def truth(name: str, boxes: Sequence[tuple[float, float, float, float, str]], expect: Expect) -> None:
        cases.append(Case(name, "truth", expect, good, truth=tuple(boxes), surfaces=("api", "app")))

    truth("truth_box_outside_image", [(300, 300, 400, 400, "Nodule")], Expect(BoxError, "outside the 256x256 image"))
    truth("truth_box_zero_area", [(50, 60, 50, 120, "Nodule")], Expect(BoxError, "no area"))
    truth("truth_box_wrong_order", [(200, 200, 100, 100, "Nodule")], Expect(BoxError, "wrong order"))
    truth("truth_box_sub_pixel", [(10, 10, 10.5, 10.5, "Nodule")], Expect(BoxError, "smaller than 1 px"))
    truth("truth_box_nan", [(float("nan"), 10, 100, 100, "Nodule")], Expect(BoxError, "non-finite"))
    truth("truth_box_unknown_class", [(10, 10, 100, 100, "Flu")], Expect(BoxError, "not one of the model's classes"))
    truth("truth_box_partly_outside", [(-40, 150, 120, 400, "Nodule")], VALID)
    truth("truth_box_huge_coordinates", [(100, 100, 1e300, 1e300, "Mass")], VALID)
    truth("truth_several_boxes", [(140, 80, 180, 130, "Nodule"), (20, 20, 240, 240, "Cardiomegaly")], VALID)
    return cases
