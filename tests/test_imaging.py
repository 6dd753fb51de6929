"""Decoding: PNG/JPEG variants and DICOM (generated at test time from a shared radiograph with pydicom)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cxrdemo.errors import ImageError
from cxrdemo.imaging import load_image
from cxrdemo.preprocess import box_to_normalised, box_to_original, resize_gray, to_tensor
from cxrdemo.models.config import ModelConfig
from cxrdemo.boxes import Box

from corpus import _png_chunk, _png_with_bad_crc
from dicom_fixtures import write_dicom

NAME = "00013125_000.png"


@pytest.fixture(scope="module")
def film(images_dir) -> np.ndarray:
    """A real NIH radiograph, downsized in memory for speed (never written into the repository)."""
    with Image.open(images_dir / NAME) as img:
        return np.asarray(img.convert("L").resize((256, 256)))


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG") if mode else Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_png_8bit_keeps_size_and_pixels(images_dir):
    r = load_image(images_dir / NAME)
    assert (r.width, r.height) == (1024, 1024) and r.pixels.dtype == np.uint8 and r.format == "png"
    with Image.open(images_dir / NAME) as img:
        assert np.array_equal(r.pixels, np.asarray(img.convert("L")))


def test_png_16bit_rgb_rgba_and_jpeg(film):
    r16 = load_image(_png((film.astype(np.uint16) * 257)), name="x16.png")
    assert r16.bit_depth == 16 and np.abs(r16.pixels.astype(int) - film).max() <= 1
    rgb = np.stack([film] * 3, axis=-1)
    assert np.abs(load_image(_png(rgb), name="rgb.png").pixels.astype(int) - film).max() <= 1
    rgba = np.dstack([rgb, np.full_like(film, 255)])
    assert np.abs(load_image(_png(rgba), name="rgba.png").pixels.astype(int) - film).max() <= 1
    buf = io.BytesIO()
    Image.fromarray(film).save(buf, format="JPEG", quality=95)
    rj = load_image(buf.getvalue(), name="x.jpg")
    assert rj.format == "jpeg" and np.abs(rj.pixels.astype(int) - film).mean() < 3


def test_dicom_monochrome2_16bit_full_range(film, tmp_path):
    stored = film.astype(np.uint16) * 16  # 12-bit values
    r = load_image(write_dicom(tmp_path / "a.dcm", stored, bits=12))
    assert r.format == "dicom" and r.metadata["photometric"] == "MONOCHROME2"
    expected = (stored - stored.min()) * 255.0 / (stored.max() - stored.min())
    assert np.abs(r.pixels.astype(float) - expected).max() <= 1


def test_dicom_monochrome1_is_inverted(film, tmp_path):
    inverted = (255 - film).astype(np.uint16)
    m1 = load_image(write_dicom(tmp_path / "m1.dcm", inverted, photometric="MONOCHROME1", bits=8))
    m2 = load_image(write_dicom(tmp_path / "m2.dcm", film.astype(np.uint16), bits=8))
    assert m1.metadata.get("inverted") is True
    assert np.abs(m1.pixels.astype(int) - m2.pixels.astype(int)).max() <= 1


def test_dicom_rescale_and_window(film, tmp_path):
    stored = film.astype(np.uint16) * 4
    # Hounsfield-like rescale: value = 2*stored - 1000; window centre/width over part of the range
    r = load_image(write_dicom(tmp_path / "w.dcm", stored, bits=12, slope=2.0, intercept=-1000.0, window=(0.0, 1000.0)))
    assert "window C=0 W=1000" in r.metadata["window"]
    values = stored.astype(float) * 2 - 1000
    below, above = values <= -500 + 1, values >= 500 - 1
    assert (r.pixels[below] <= 1).all() and (r.pixels[above] >= 254).all()


def test_dicom_rgb(film, tmp_path):
    rgb = np.stack([film] * 3, axis=-1)
    r = load_image(write_dicom(tmp_path / "rgb.dcm", rgb))
    assert np.abs(r.pixels.astype(int) - film).max() <= 1


def test_dicom_without_pixels_is_a_clear_error(tmp_path):
    path = write_dicom(tmp_path / "sr.dcm", np.zeros((4, 4)), with_pixels=False, modality="SR")
    with pytest.raises(ImageError, match="without pixel data"):
        load_image(path)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is text, not a picture", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image|corrupt"),
    ],
)
def test_bad_bytes_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data, name="bad.png")


def test_truncated_png_and_tiny_and_bomb(film):
    data = _png(film)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2], name="cut.png")
    with pytest.raises(ImageError, match="at least"):
        load_image(_png(np.zeros((1, 1), np.uint8)), name="dot.png")
    # A 20000x20000 PNG header is refused before decoding (the file itself is tiny).
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    with pytest.raises(ImageError, match="limit is 50 MP"):
        load_image(buf.getvalue(), name="bomb.png")


def test_a_bad_ancillary_checksum_is_refused(images_dir):
    """libpng (the fast path for NIH's format) would only warn about an ancillary chunk; the check refuses it."""
    data = (images_dir / NAME).read_bytes()
    ihdr_end = 8 + 12 + 13  # signature, then IHDR: length, type, 13 bytes, CRC
    with_text = data[:ihdr_end] + _png_chunk(b"tEXt", b"Comment\0hello") + data[ihdr_end:]
    with pytest.raises(ImageError, match="bad checksum in its tEXt chunk"):
        load_image(_png_with_bad_crc(with_text, b"tEXt"), name="bad.png")


def test_preprocess_contract(film):
    cfg = ModelConfig(input_size=64)
    from cxrdemo.imaging import Radiograph

    x = to_tensor(Radiograph(film, "f.png", "png"), cfg)
    assert x.shape == (1, 3, 64, 64) and x.dtype.is_floating_point
    manual = (resize_gray(film, 64).astype(np.float32) / 255.0 - cfg.mean[0]) / cfg.std[0]
    assert np.allclose(x[0, 0].numpy(), manual, atol=1e-5)
    b = Box(100, 50, 300, 250)
    back = box_to_original(box_to_normalised(b, 400, 300), 400, 300)
    assert np.allclose(back.xyxy, b.xyxy)


def _multi_frame_tiff(frames: int) -> bytes:
    """A TIFF of ``frames`` tiny 16x16 frames (the issue's 450,000-frame upload, scaled down)."""
    tile = Image.fromarray(np.full((16, 16), 128, np.uint8))
    buf = io.BytesIO()
    tile.save(buf, format="TIFF", save_all=True, append_images=[tile] * (frames - 1))
    return buf.getvalue()


def test_a_many_frame_tiff_named_png_is_refused_from_its_bytes_without_counting_frames(tmp_path, monkeypatch):
    """The format comes from the bytes, not the name: a TIFF named .png is refused before Pillow opens it, so its
    frames are never counted (Pillow's count walks every IFD) or seeked, through load_image and the CLI's check."""
    from PIL import TiffImagePlugin

    from cxrdemo.imaging import check_image_file

    path = tmp_path / "scan.png"
    path.write_bytes(_multi_frame_tiff(3000))
    touched: list[str] = []

    def spy(name):
        def fail(*args, **kwargs):
            touched.append(name)
            raise AssertionError(f"TiffImageFile.{name} was called")

        return fail

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", spy("_open"))
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "seek", spy("seek"))
    for check in (load_image, check_image_file, lambda p: load_image(p.read_bytes(), name=p.name)):
        with pytest.raises(ImageError, match=r"^scan\.png is a TIFF image; use a PNG, JPEG or DICOM radiograph$"):
            check(path)
    assert touched == []


@pytest.mark.parametrize(
    ("save", "kind"),
    [({"format": "GIF"}, "GIF"), ({"format": "BMP"}, "BMP"), ({"format": "WEBP"}, "WebP"), ({"format": "TIFF"}, "TIFF")],
)
def test_other_formats_are_named_and_refused_whatever_the_suffix(film, save, kind):
    buf = io.BytesIO()
    Image.fromarray(film).save(buf, **save)
    for name in ("x.png", "x.jpg", "x"):
        with pytest.raises(ImageError, match=rf"^{name} is a {kind} image; use a PNG, JPEG or DICOM radiograph$"):
            load_image(buf.getvalue(), name=name)


def test_an_animated_png_shows_frame_one_from_its_actl_count(film, monkeypatch):
    """An APNG's frame count is read from its acTL chunk; Pillow's n_frames/seek are never used."""
    from PIL import PngImagePlugin

    frames = [Image.fromarray(film), Image.fromarray(255 - film), Image.fromarray(film // 2), Image.fromarray(film // 3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "seek", lambda *a, **k: pytest.fail("seek was called"))
    r = load_image(buf.getvalue(), name="anim.png")
    assert np.array_equal(r.pixels, film)
    assert r.metadata["note"] == "multi-frame file: showing frame 1 of 4" and r.metadata["frames"] == 4


def test_check_image_file_refuses_text_and_header_bombs_without_decoding(tmp_path, film):
    from cxrdemo.imaging import check_image_file

    text = tmp_path / "notes.png"
    text.write_text("This is a text file, not a radiograph.\n" * 20)
    with pytest.raises(ImageError, match="notes.png is not an image cxrdemo can read"):
        check_image_file(text)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg is empty"):
        check_image_file(empty)
    good = tmp_path / "good.jpg"
    Image.fromarray(film).save(good, format="JPEG")
    assert check_image_file(good) == "jpeg"
    tiny = tmp_path / "tiny.png"
    Image.new("L", (8, 8)).save(tiny)
    with pytest.raises(ImageError, match=r"8x8 pixels"):
        check_image_file(tiny)
