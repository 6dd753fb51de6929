"""Reading an annotation file safely and finding images by id: the plumbing every layout reader shares.

- :func:`read_text`: a ``.csv`` / ``.json`` file (or its ``.gz`` / single-member ``.zip``) as text, its size
  capped before it is read (a ``.gz`` is inflated to at most the cap); only regular files;
- :func:`csv_rows` / :func:`load_json`: parsed with the standard library only (``csv``, ``json``: nothing from a data
  set is executed or unpickled); :func:`where` and :func:`number` make the one-line errors that name the file, the
  row and the field;
- :class:`ImageIndex`: a bounded, recursive walk of the image folder that finds an image by id with any supported
  extension (``.png``, ``.jpg``, ``.jpeg``, ``.dcm``, ``.dicom``), so a VinDr, RSNA or SIIM folder of DICOMs works
  as it is distributed; :func:`header_size` reads an image's size from its header without decoding its pixels.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from ..errors import InputError
from ..imaging import DICOM_SUFFIXES, IMAGE_SUFFIXES
from ..publicmode import clip_text, is_public
from .limits import LOCAL, Limits

#: The csv module's field limit once raised: the local RLE cap plus room for the rest of a row.
LOCAL_FIELD_LIMIT = LOCAL.rle_chars + 64



def shown(path: Path | str) -> str:
    """How a file is named in a message: its path locally, its name alone in public mode (no server path)."""
    return Path(path).name if is_public() else str(path)


def where(path: Path | str, row: int | None = None, column: str | None = None) -> str:
    """``file``, ``file, row N`` or ``file, row N, field 'x'``: the head of a one-line error."""
    text = shown(path)
    if row is not None:
        text += f", row {row}"
    if column is not None:
        text += f", field {clip_text(column, 40)!r}"
    return text


def row_id(path: Path, n: int, row: Mapping[str, str], column: str) -> str:
    """Row ``n``'s image id in ``column``; a one-line :class:`InputError` naming the file, row and field when empty."""
    value = row[column]
    if not value:
        raise InputError(f"{where(path, n, column)}: empty; every row names its image")
    return value


def read_text(path: Path, cap: Limits) -> str:
    """The text of ``path`` (UTF-8, BOM removed), ``.gz`` and single-member ``.zip`` inflated, at most
    ``cap.file_bytes`` bytes read or inflated.

    Raises:
        InputError: missing, not a regular file, too large, corrupt compression or not UTF-8 (one line).
    """
    if not path.is_file():
        raise InputError(f"{shown(path)} does not exist or is not a file; give an annotation file (CSV or JSON)")
    size = path.stat().st_size
    if size > cap.file_bytes:
        raise InputError(f"{shown(path)} is {size / 2**20:,.0f} MB; annotation files are capped at "
                         f"{cap.file_bytes / 2**20:,.0f} MB: split it")
    raw = path.read_bytes()
    name = path.name.lower()
    try:
        if name.endswith(".gz"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(raw, cap.file_bytes + 1)
            if len(data) > cap.file_bytes or inflater.unconsumed_tail:
                raise InputError(f"{shown(path)} inflates to more than {cap.file_bytes / 2**20:,.0f} MB; split it")
            raw = data
        elif name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise InputError(f"{shown(path)}: a zipped annotation file must hold exactly one file, not {len(members)}")
                with zf.open(members[0]) as fh:
                    data = fh.read(cap.file_bytes + 1)
                if len(data) > cap.file_bytes:
                    raise InputError(f"{shown(path)} inflates to more than {cap.file_bytes / 2**20:,.0f} MB; split it")
                raw = data
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise InputError(f"{shown(path)}: corrupt compressed file ({clip_text(exc)}); decompress it again") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown(path)}: byte {exc.start} is not UTF-8 text; save the file as UTF-8") from None


def head_text(path: Path, size: int = 4096) -> str:
    """The first characters of ``path`` (inflated when ``.gz`` / ``.zip``), for layout detection; ``''`` if
    unreadable."""
    try:
        name = path.name.lower()
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                raw = fh.read(size)
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if not members:
                    return ""
                with zf.open(members[0]) as fh:
                    raw = fh.read(size)
        else:
            with open(path, "rb") as fh:
                raw = fh.read(size)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile):
        return ""
    return raw.decode("utf-8-sig", errors="replace")


def csv_rows(path: Path, cap: Limits, need: Sequence[str] = ()) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """``(header, rows)`` of a CSV: header names stripped (SIIM writes ``' EncodedPixels'``), rows as
    ``(row number, {column: cell})`` where row 1 is the header's line, so row numbers are the file's lines for a
    file without quoted newlines. At most ``cap.rows`` data rows.

    Raises:
        InputError: a column of ``need`` is missing, a row has more cells than the header, too many rows.
    """
    text = read_text(path, cap)
    # An RLE cell (SIIM) may exceed the csv module's 128 KiB default; the RLE cap bounds it instead. The limit is
    # process-wide: only ever raised, to a value that depends on nothing but the caps (so threads agree).
    if csv.field_size_limit() < cap.rle_chars + 64:
        csv.field_size_limit(max(LOCAL_FIELD_LIMIT, cap.rle_chars + 64))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise InputError(f"{where(path, 1)}: {clip_text(exc)}; save it as a plain CSV") from None
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(f"{where(path, 1)}: missing column(s) {', '.join(map(repr, missing))}; the header is "
                         f"{clip_text(','.join(header))!r}")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        n = 1
        try:
            for cells in reader:
                n += 1
                if not cells or not any(c.strip() for c in cells):
                    continue
                if n - 1 > cap.rows:
                    raise InputError(f"{shown(path)}: more than {cap.rows:,} rows; split the file")
                if len(cells) > len(header):
                    raise InputError(f"{where(path, n)}: {len(cells)} cells for {len(header)} columns; "
                                     "quote cells that contain commas")
                yield n, dict(zip(header, (c.strip() for c in cells)))
        except csv.Error as exc:
            raise InputError(f"{where(path, n)}: {clip_text(exc)}; save it as a plain CSV") from None

    return header, rows()


def number(path: Path, row: int | None, column: str, text: object, *, blank: bool = False) -> float | None:
    """``text`` as a finite float, or ``None`` when blank and ``blank`` allows it.

    Raises:
        InputError: not a finite number (one line naming the file, row and field).
    """
    s = "" if text is None else str(text).strip()
    if not s:
        if blank:
            return None
        raise InputError(f"{where(path, row, column)}: empty; give a number")
    try:
        value = float(s)
    except ValueError:
        raise InputError(f"{where(path, row, column)}: {clip_text(s, 40)!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where(path, row, column)}: {clip_text(s, 40)!r} is not a finite number")
    return value


def load_json(path: Path, cap: Limits) -> object:
    """The JSON value of ``path`` (``json`` module only), size capped.

    Raises:
        InputError: not JSON (the line and column of the first error), or nested too deeply.
    """
    text = read_text(path, cap)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{shown(path)}, line {exc.lineno}, column {exc.colno}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(f"{shown(path)}: JSON nested too deeply; flatten it") from None


def load_json_top(path: Path, cap: Limits, kind: type, shape: str, noun: str) -> object:
    """:func:`load_json` of a file whose top level is a ``kind`` (list or dict) of at most ``cap.rows`` items;
    otherwise a one-line :class:`InputError`: ``shape`` says what the file should be, ``noun`` names its items."""
    data = load_json(path, cap)
    if not isinstance(data, kind):
        raise InputError(f"{where(path)}: {shape}")
    if len(data) > cap.rows:  # type: ignore[arg-type]
        raise InputError(f"{where(path)}: {len(data):,} {noun}; the cap is {cap.rows:,}")  # type: ignore[arg-type]
    return data


# ------------------------------------------------------------------------------------------------ image lookup
def _strip(text: str) -> str:
    p = Path(text)
    return str(p.with_suffix("")) if p.suffix.lower() in IMAGE_SUFFIXES else text


def id_keys(name: str) -> list[str]:
    """The keys under which an image id or a relative path is looked up, most specific first: itself, without its
    extension, then its tails (``valid/patient1/...``, ``patient1/...``) down to its file name with and without
    extension, and (for CheXpert-style paths ``patient1/study1/view1_frontal.jpg``) its last three parts joined by
    ``_`` (CheXlocalize's ``patient1_study1_view1_frontal``)."""
    text = str(name).strip().replace("\\", "/")
    parts = [q for q in text.split("/") if q not in ("", ".")]
    keys: list[str] = []
    for i in range(len(parts)):
        tail = "/".join(parts[i:])
        keys += [tail, _strip(tail)]
    stem_parts = _strip(text).split("/")
    if len(stem_parts) >= 3:
        keys.append("_".join(stem_parts[-3:]))
    return list(dict.fromkeys(k for k in keys if k))


#: Marks a file name that two files under the folder share: found only by a longer path, never by the name alone.
_AMBIGUOUS = Path("\0ambiguous")


@dataclass
class ImageIndex:
    """Images under a folder, found by id with any supported extension; the walk is bounded (``cap.scan_files``
    files, ``cap.scan_depth`` folders deep) and follows no symbolic link to a folder. A file name that two files
    share finds neither (a longer path does): an image is never taken for another of the same name."""

    root: Path
    by_key: dict[str, Path] = field(default_factory=dict)
    truncated: bool = False

    @classmethod
    def build(cls, root: Path | None, cap: Limits) -> "ImageIndex | None":
        """The index of ``root`` (``None`` when no folder is given).

        Raises:
            InputError: ``root`` is given but is not a folder.
        """
        if root is None:
            return None
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"image folder {shown(root)} does not exist; give the folder that holds the images")
        index = cls(root)
        seen = 0
        base_depth = len(root.parts)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            depth = len(Path(dirpath).parts) - base_depth
            if depth >= cap.scan_depth:
                dirnames[:] = []
            dirnames.sort()
            for fname in sorted(filenames):
                seen += 1
                if seen > cap.scan_files:
                    index.truncated = True
                    return index
                if Path(fname).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                full = Path(dirpath) / fname
                for key in id_keys(full.relative_to(root).as_posix()):
                    known = index.by_key.get(key)
                    index.by_key[key] = full if known is None or known == full else _AMBIGUOUS
        return index

    def find(self, image_id: str) -> Path | None:
        """The file of ``image_id`` (an id, a file name or a path relative to the folder or to a parent of it), or
        ``None`` (not found, or a name two files share)."""
        for key in id_keys(image_id):
            hit = self.by_key.get(key)
            if hit is _AMBIGUOUS:
                continue
            if hit is not None:
                return hit
        return None


def header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of an image from its header alone (PNG/JPEG via Pillow's lazy open, DICOM ``Columns`` /
    ``Rows`` read with ``stop_before_pixels``; a Deflated-syntax DICOM's header from the first
    :data:`cxrdemo.dicom_read.HEADER_BYTES` of its inflated stream, never the whole file), or ``None`` when the header
    cannot be read."""
    try:
        if path.suffix.lower() in DICOM_SUFFIXES:
            w, h = _dicom_size(path)
        else:
            from PIL import Image

            with Image.open(path) as img:  # lazy: reads the header, decodes nothing
                w, h = img.size
    except Exception:  # noqa: BLE001 - any unreadable header means "size unknown", reported by the caller
        return None
    return (w, h) if w > 0 and h > 0 else None


def _dicom_size(path: Path) -> tuple[int, int]:
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_preamble

    from ..dicom_read import DEFLATED, HEADER_BYTES, inflate

    with open(path, "rb") as fh:
        read_preamble(fh, True)
        meta = _read_file_meta_info(fh)
        if str(meta.get("TransferSyntaxUID", "") or "") == DEFLATED:
            head = inflate(fh.read(HEADER_BYTES), HEADER_BYTES, path.name, partial=True)
            ds = pydicom.dcmread(io.BytesIO(head), force=True, stop_before_pixels=True)
        else:
            fh.seek(0)
            ds = pydicom.dcmread(fh, force=True, stop_before_pixels=True)
    return int(ds.Columns), int(ds.Rows)


__all__ = ["shown", "where", "read_text", "head_text", "csv_rows", "number", "load_json", "id_keys", "ImageIndex", "header_size"]
