"""DICOM decompression bombs are refused from the header, before anything is inflated (issue 19, finding 3).

The hostile files are built here with pydicom (``bench/dicom_bomb.py``'s builder): a few MB on disk, hundreds of
MB inflated. Memory is measured with tracemalloc (Python's allocations, which include zlib's and pydicom's output
buffers); each bound is argued next to it. No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from cxrdemo.dicom_read import DEFAULT_MAX_PIXEL_MB, HEADER_BYTES, LIMIT_ENV, pixel_byte_limit
from cxrdemo.errors import ImageError
from cxrdemo.imaging import load_image

REPO = Path(__file__).resolve().parent.parent
MB = 2**20


def _bench():
    spec = importlib.util.spec_from_file_location("dicom_bomb", REPO / "bench" / "dicom_bomb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_deflated_bomb = _bench().write_deflated_bomb


def _peak(fn):
    """``(result or exception, peak bytes allocated by Python while fn ran)``."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except ImageError as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_limit(monkeypatch):
    """A 16 MiB limit, so a bomb of 100 frames (400 MiB inflated) is 25 times over it and a regression costs
    400 MiB, not the issue's 9 GB."""
    monkeypatch.setenv(LIMIT_ENV, "16")
    return 16 * MB


def test_bomb_declaring_many_frames_is_refused_from_its_header(tmp_path, small_limit):
    path = write_deflated_bomb(tmp_path / "bomb.dcm", frames=100)  # 2048x2048x100 8-bit: 400 MiB inflated
    size = path.stat().st_size
    assert size < 2 * MB
    err, peak = _peak(lambda: load_image(path))
    assert isinstance(err, ImageError)
    message = str(err)
    assert "\n" not in message and "declares 100 frame(s) of 2048x2048 pixels, 400 MB" in message
    assert "limit is 16 MB" in message
    # Held at most: the file (< 2 MiB), the rest of its deflate stream kept by zlib (< 2 MiB), the first
    # HEADER_BYTES (1 MiB) of the inflated stream, pydicom's small header objects: < 8 MiB. Inflating the pixel
    # data at all would need 400 MiB.
    assert peak < 3 * size + HEADER_BYTES + 4 * MB


def test_bomb_with_a_lying_header_is_refused_by_the_bounded_inflater(tmp_path, small_limit):
    """The header says 1 frame (4 MiB, under the limit) but the stream inflates to 100 frames: inflation stops at
    the limit plus the header allowance."""
    path = write_deflated_bomb(tmp_path / "lie.dcm", frames=100, declared_frames=1)
    size = path.stat().st_size
    err, peak = _peak(lambda: load_image(path))
    assert isinstance(err, ImageError) and "\n" not in str(err)
    assert "inflates to more than 17 MB" in str(err)
    # The inflater's output is at most limit + HEADER_BYTES + 1 bytes (17 MiB); CPython's zlib gathers it in
    # blocks and joins them into one bytes object at the end, so twice that is held for a moment (34 MiB). Add the
    # file and zlib's copy of the unread input (< 1 MiB each) and the 1 MiB header peek: < 41 MiB. Unbounded,
    # inflating the stream needs its 400 MiB (800 MiB while joining).
    assert peak < 2 * (small_limit + HEADER_BYTES) + 3 * size + 4 * MB


def test_modest_deflated_multi_frame_file_shows_frame_one(tmp_path):
    path = write_deflated_bomb(tmp_path / "cine.dcm", frames=3, rows=64, cols=48)
    radiograph = load_image(path)
    assert radiograph.pixels.shape == (64, 48) and radiograph.format == "dicom"
    assert radiograph.metadata["note"] == "multi-frame DICOM: showing frame 1 of 3"


def test_real_deflated_radiograph_decodes_like_the_uncompressed_one(tmp_path, images_dir, small_limit):
    """A genuine deflated DICOM of an NIH film (pydicom deflates it on save) gives the same pixels as the
    uncompressed file: lossless both ways, so equality is exact."""
    import pydicom
    from dicom_fixtures import write_dicom
    from PIL import Image
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    film = np.asarray(Image.open(sorted(images_dir.glob("*.png"))[0]).convert("L"))
    plain = write_dicom(tmp_path / "plain.dcm", film.astype(np.uint16) * 16, bits=12)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    deflated = tmp_path / "deflated.dcm"
    assert deflated.stat().st_size < plain.stat().st_size  # it really is deflated
    np.testing.assert_array_equal(load_image(deflated).pixels, load_image(plain).pixels)


def test_corrupt_deflate_stream_is_one_line(tmp_path):
    path = write_deflated_bomb(tmp_path / "ok.dcm", frames=1, rows=64, cols=64)
    data = bytearray(path.read_bytes())
    start = data.index(b"DICM") + 4 + 200  # inside the deflate stream, after the file meta
    data[start : start + 64] = b"\xff" * 64
    with pytest.raises(ImageError) as err:
        load_image(bytes(data), name="broken.dcm")
    assert "\n" not in str(err.value) and str(err.value).startswith("broken.dcm")


def test_refusal_leaves_the_reader_working(tmp_path, small_limit):
    """After refusing a bomb, the next (legitimate) file reads normally: nothing is left half-configured."""
    with pytest.raises(ImageError):
        load_image(write_deflated_bomb(tmp_path / "bomb.dcm", frames=100))
    ok = load_image(write_deflated_bomb(tmp_path / "ok.dcm", frames=1, rows=32, cols=32))
    assert ok.pixels.shape == (32, 32)


def test_limit_variable():
    assert pixel_byte_limit({}) == DEFAULT_MAX_PIXEL_MB * MB
    assert pixel_byte_limit({LIMIT_ENV: "64"}) == 64 * MB
    assert pixel_byte_limit({LIMIT_ENV: ""}) == DEFAULT_MAX_PIXEL_MB * MB
    from cxrdemo.errors import InputError

    for bad in ("lots", "-5", "0", "inf", "nan"):  # issue 27 E5: inf raised on every upload; now one line, named
        with pytest.raises(InputError, match=rf"^{LIMIT_ENV}='{bad}' is not a positive number"):
            pixel_byte_limit({LIMIT_ENV: bad})
