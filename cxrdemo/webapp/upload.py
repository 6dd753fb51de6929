"""Uploaded files: the size limit (``CXRDEMO_MAX_UPLOAD_MB``), the accepted suffixes, and waiting for a file that
Gradio is still moving into place."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import ImageError
from ..envnumbers import env_number
from ..imaging import IMAGE_SUFFIXES, MAX_FILE_BYTES, Radiograph, load_image
from ..publicmode import clip_text

#: Largest upload the app accepts (MB); ``CXRDEMO_MAX_UPLOAD_MB`` overrides. A 4280x3520 16-bit CR DICOM is ~30 MB.
DEFAULT_MAX_UPLOAD_MB = 50
#: Suffixes the upload control offers (:data:`cxrdemo.imaging.IMAGE_SUFFIXES`); files without a suffix are tried
#: too (DICOM files often have none).
UPLOAD_SUFFIXES = IMAGE_SUFFIXES


#: The variable that sets the upload limit, in MB (MiB).
UPLOAD_ENV = "CXRDEMO_MAX_UPLOAD_MB"


def max_upload_bytes() -> int:
    """The upload size limit in bytes (``CXRDEMO_MAX_UPLOAD_MB``, default :data:`DEFAULT_MAX_UPLOAD_MB`; at least 1 MB).

    Raises:
        InputError: the variable is not a positive number (NaN, infinity, text...): one line naming it.
    """
    mb = env_number(UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB, maximum=MAX_FILE_BYTES / 2**20)
    return int(max(mb, 1.0) * 1024 * 1024)


def read_upload(path: str | os.PathLike | None, max_bytes: int | None = None) -> Radiograph:
    """Decode the file an upload control handed over (its path) into a radiograph.

    Raises :class:`ImageError` for no file, a file over ``max_bytes`` (default :func:`max_upload_bytes`), a suffix
    the app does not take, or anything :func:`cxrdemo.imaging.load_image` refuses.
    """
    if path is None or str(path).strip() == "":
        raise ImageError("no radiograph yet: upload a PNG, JPEG or DICOM file, or click an example")
    file = Path(path)
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    wait_for_upload(file)
    if file.is_file():
        size = file.stat().st_size
        if size > limit:
            raise ImageError(f"{clip_text(file.name)} is {size / 2**20:.1f} MB; the upload limit is {limit / 2**20:.0f} MB")
    suffix = file.suffix.lower()
    if suffix and suffix not in UPLOAD_SUFFIXES:
        raise ImageError(f"{clip_text(file.name)}: {clip_text(suffix, 16)} files are not accepted; upload a PNG, JPEG or DICOM (.dcm) radiograph")
    return load_image(file)


def wait_for_upload(file: Path, timeout_s: float = 3.0) -> None:
    """Wait briefly for an upload that is still being moved into place.

    Gradio's upload route answers with the final path and moves the file there in a background task, so a request
    sent right after the upload can arrive first; a missing file is refused only after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not file.exists():
        raise ImageError(f"{clip_text(file.name)} did not arrive on the server; upload it again")
