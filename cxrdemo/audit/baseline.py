"""Per-image probability CSVs: another model's predictions to compare with (numpy only; no torch).

Format (reproduce-chexnet's ``preds.csv``, see ``../shared/data/teacher/``): UTF-8, comma-separated, a header row,
one row per image::

    Image Index,prob_Atelectasis,prob_Cardiomegaly,...
    00000054_004.png,0.027094167,0.15380847,...

Every class asked for needs its ``prob_<Label>`` column; other columns are ignored. Each problem is reported as
one :class:`cxrdemo.errors.InputError` line that names the file and, for a bad cell, the data row (1 = the first
row after the header), the file line and the column.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError

#: The image column of the format.
IMAGE_COLUMN = "Image Index"
#: Probability columns are ``PREFIX + label``.
PREFIX = "prob_"


def column_name(label: str) -> str:
    """The column of ``label``'s probability."""
    return f"{PREFIX}{label}"


def read_predictions(path: str | Path, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """``{image name: (len(classes),) float64 probabilities in classes' order}`` from a predictions CSV.

    Raises:
        InputError: (one line naming the file) unreadable or empty file; no ``Image Index`` column or a missing
            ``prob_<class>`` column; a row with the wrong number of cells or no image name; a value that is not a
            number in [0, 1] (naming row, line and column); an image listed twice; no data row.
    """
    path = Path(path)
    name = str(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{name}: cannot read the predictions file ({exc.strerror or exc.__class__.__name__})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header or not any(cell.strip() for cell in header):
                raise InputError(f"{name}: empty file; expected a header '{IMAGE_COLUMN},{PREFIX}<Label>,...'")
            header = [cell.strip() for cell in header]
            if IMAGE_COLUMN not in header:
                raise InputError(f"{name}: no '{IMAGE_COLUMN}' column in the header")
            missing = [column_name(c) for c in classes if column_name(c) not in header]
            if missing:
                raise InputError(f"{name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
            image_at = header.index(IMAGE_COLUMN)
            columns = [column_name(c) for c in classes]
            value_at = [header.index(c) for c in columns]
            out: dict[str, np.ndarray] = {}
            first_row: dict[str, int] = {}
            for row_number, row in enumerate(reader, start=1):
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise InputError(
                        f"{name}: row {row_number} (line {line}) has {len(row)} cells, the header has {len(header)}"
                    )
                image = row[image_at].strip()
                if not image:
                    raise InputError(f"{name}: row {row_number} (line {line}) has no {IMAGE_COLUMN}")
                if image in out:
                    raise InputError(
                        f"{name}: image {image} is listed twice (rows {first_row[image]} and {row_number}, line {line})"
                    )
                probs = np.empty(len(columns), dtype=np.float64)
                for k, (column, at) in enumerate(zip(columns, value_at)):
                    cell = row[at].strip()
                    try:
                        value = float(cell)
                    except ValueError:
                        raise InputError(
                            f"{name}: row {row_number} (line {line}), column {column}: {cell!r} is not a number"
                        ) from None
                    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                        raise InputError(
                            f"{name}: row {row_number} (line {line}), column {column}: {cell} is not a probability in [0, 1]"
                        )
                    probs[k] = value
                out[image] = probs
                first_row[image] = row_number
        except csv.Error as exc:
            raise InputError(f"{name}: not a valid CSV file near line {reader.line_num} ({exc})") from None
        except UnicodeDecodeError:
            raise InputError(f"{name}: not a UTF-8 text file") from None
    if not out:
        raise InputError(f"{name}: no prediction rows after the header")
    return out


def write_predictions(
    path: str | Path,
    names: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
) -> Path:
    """Write ``(N, len(classes))`` probabilities of images ``names`` in the format :func:`read_predictions` reads.

    Values are written with ``repr`` (shortest round-trip form), so reading back gives the same float64 values.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    names = [str(n) for n in names]
    if probs.shape != (len(names), len(classes)):
        raise ValueError(f"probabilities {probs.shape} must be ({len(names)}, {len(classes)})")
    if len(set(names)) != len(names):
        raise ValueError("image names must be distinct")
    if probs.size and not (np.isfinite(probs).all() and probs.min() >= 0.0 and probs.max() <= 1.0):
        raise ValueError("probabilities must lie in [0, 1]")
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([IMAGE_COLUMN, *(column_name(c) for c in classes)])
        for image, row in zip(names, probs):
            writer.writerow([image, *(repr(float(v)) for v in row)])
    return path


def match_images(names_a: Iterable[str], preds_b: Mapping[str, np.ndarray]) -> tuple[list[str], int]:
    """The images of ``names_a`` that ``preds_b`` has (in ``names_a``'s order, once each), and how many it lacks."""
    common: list[str] = []
    missing = 0
    for image in dict.fromkeys(str(n) for n in names_a):
        if image in preds_b:
            common.append(image)
        else:
            missing += 1
    return common, missing
