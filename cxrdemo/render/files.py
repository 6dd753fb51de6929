"""The one writer of panel image files (the CLI's ``--render``, the web app's panels and its exported report).

How to call it::

    from cxrdemo.render import render_panels
    from cxrdemo.render.files import write_panels, write_report, remove_older_than

    panels = render_panels(radiograph, analysis, size=640)

    # The web app: one uniquely named file per panel for Gradio (JPEG q95 4:4:4 films, fast PNG chart), old ones
    # pruned; returns {"prediction": Path, "comparison": Path, "probabilities": Path, "cam": Path}.
    remove_older_than(folder, 7200.0, "panel-*")
    paths = write_panels(panels, folder, "panel", film_format="jpeg", unique=True, png_compress_level=1)

    # The web app's exported report: the composite (render the panels at 1024 px) -> <folder>/<stem>_report.png.
    png = write_report(render_panels(radiograph, analysis, size=1024), folder, stem)

    # The CLI: four PNGs <stem>_<panel>.png with the footer under each, and the composite <stem>_panels.png.
    write_panels(panels, folder, stem, film_format="png", footer_lines=panels.footer)
    write_report(panels, folder, stem, name="panels")

Every file is written atomically: encoded into a hidden temporary file in the same folder, then renamed over the
final name (``os.replace``), so a reader (Gradio copying a panel, a browser) never sees half a file. A folder that
cannot be made or written raises :class:`PanelWriteError` (a :class:`~cxrdemo.errors.CxrDemoError`, one line):
``cannot write panels to DIR: <reason>; choose a writable folder``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Literal, Sequence

from PIL import Image

from ..errors import CxrDemoError
from .panels import PANEL_NAMES, Panels, composite
from .draw import with_text_strip
from .palette import exact_palette

__all__ = ["PanelWriteError", "remove_older_than", "write_panels", "write_report"]

FilmFormat = Literal["jpeg", "png"]
#: Panels that are film (photographic: JPEG is fine); the chart is flat colours and text, always PNG.
FILM_PANELS = frozenset({"prediction", "comparison", "cam"})
_TEMP_SUFFIX = ".tmp"


class PanelWriteError(CxrDemoError):
    """A panel or report file could not be written (folder not creatable or not writable, disk full...)."""


def _write_error(folder: Path, what: str, exc: OSError) -> PanelWriteError:
    reason = exc.strerror or str(exc) or exc.__class__.__name__
    return PanelWriteError(f"cannot write {what} to {folder}: {reason}; choose a writable folder")


def _save_atomic(image: Image.Image, path: Path, fmt: str, options: dict) -> None:
    """Encode ``image`` into a temporary file beside ``path``, then rename it to ``path`` (umask-respecting
    permissions, like a plain save); the temporary file is removed if anything fails."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format=fmt, **options)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _folder(folder: str | os.PathLike, what: str) -> Path:
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(out, what, exc) from None
    return out


def write_panels(
    panels: Panels,
    folder: str | os.PathLike,
    stem: str,
    *,
    film_format: FilmFormat = "jpeg",
    quality: int = 95,
    names: Sequence[str] = PANEL_NAMES,
    unique: bool = False,
    footer_lines: Sequence[str] = (),
    png_compress_level: int = 6,
) -> dict[str, Path]:
    """Write one image file per panel into ``folder`` (made if missing); returns ``{panel name: path}``.

    Args:
        panels: from :func:`~cxrdemo.render.render_panels`.
        folder: where the files go.
        stem: file names are ``<stem>_<panel>.<jpg|png>`` (``<stem>-<32 hex>_<panel>...`` when ``unique``).
        film_format: ``"jpeg"`` (quality ``quality``, no chroma subsampling: 4:4:4) or ``"png"`` for the three film
            panels; the probability chart is always PNG (a palette PNG of exactly its colours when it has at most
            256: :func:`~cxrdemo.render.palette.exact_palette`, the same pixels).
        quality: JPEG quality.
        names: which panels to write (any of ``prediction``, ``comparison``, ``probabilities``, ``cam``).
        unique: add a random part to the stem, so concurrent calls never share a file name.
        footer_lines: lines written on a strip under each panel (e.g. ``panels.footer``); none by default.
        png_compress_level: zlib level of the PNGs (1: fast, for the web app; 6: PIL's default, smaller).

    Raises:
        PanelWriteError: the folder cannot be made or a file cannot be written.
        ValueError: an unknown panel name or format.
    """
    if film_format not in ("jpeg", "png"):
        raise ValueError(f"film_format must be 'jpeg' or 'png', not {film_format!r}")
    unknown = [n for n in names if n not in PANEL_NAMES]
    if unknown:
        raise ValueError(f"unknown panel name(s) {unknown}; choose from {', '.join(PANEL_NAMES)}")
    out = _folder(folder, "panels")
    base = f"{stem}-{uuid.uuid4().hex}" if unique else stem
    paths: dict[str, Path] = {}
    for name in names:
        image = with_text_strip(getattr(panels, name), footer_lines)
        if name in FILM_PANELS and film_format == "jpeg":
            path, fmt, options = out / f"{base}_{name}.jpg", "JPEG", dict(quality=quality, subsampling=0)
            if image.mode != "RGB":  # convert() to the same mode would copy the panel for nothing
                image = image.convert("RGB")
        else:
            path, fmt, options = out / f"{base}_{name}.png", "PNG", dict(compress_level=png_compress_level)
            image = exact_palette(image)  # the chart: a lossless palette PNG (13 -> 8 ms at 768 px)
        try:
            _save_atomic(image, path, fmt, options)
        except OSError as exc:
            raise _write_error(out, "panels", exc) from None
        paths[name] = path
    return paths


def write_report(
    panels: Panels,
    folder: str | os.PathLike,
    stem: str,
    *,
    name: str = "report",
    footer_lines: Sequence[str] | None = None,
    unique: bool = False,
) -> Path:
    """Write the composite of ``panels`` (:func:`~cxrdemo.render.composite`: 2x2 grid, title line, footer) as
    ``<folder>/<stem>_<name>.png`` (``<stem>-<32 hex>_<name>.png`` when ``unique``); returns its path.

    ``footer_lines`` defaults to ``panels.footer`` (the disclaimer, and the training/validation note when the image
    was one of the model's). The exported report of the web app renders its panels at 1024 px first.

    Raises:
        PanelWriteError: the folder cannot be made or the file cannot be written.
    """
    out = _folder(folder, "the report")
    base = f"{stem}-{uuid.uuid4().hex}" if unique else stem
    path = out / f"{base}_{name}.png"
    try:
        _save_atomic(composite(panels, footer_lines), path, "PNG", {})
    except OSError as exc:
        raise _write_error(out, "the report", exc) from None
    return path


def remove_older_than(folder: str | os.PathLike, max_age_s: float, pattern: str = "*", *, folders: bool = False) -> int:
    """Delete the files of ``folder`` matching ``pattern`` (and temporary files left by an interrupted write) last
    modified more than ``max_age_s`` seconds ago; returns how many went. Missing folder or races: no error.

    With ``folders``, the matching subfolders are deleted instead (each with everything in it), files are kept.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    for path in {*root.glob(pattern), *root.glob(f".*{_TEMP_SUFFIX}")}:
        try:
            if not (path.is_dir() if folders else path.is_file()) or path.stat().st_mtime >= cutoff:
                continue
            if folders:
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
            removed += 1
        except OSError:
            pass  # removed by a concurrent call
    return removed
