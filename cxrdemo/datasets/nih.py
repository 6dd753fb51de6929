"""NIH ChestX-ray14 vocabulary: the classes, the box list's spellings and frame, and class-name matching.

One home for facts about NIH's data that several modules need (timm's ``_registry.py`` habit: standard library
only, so that the CLI, the app and the data readers can import it without torch):

- :data:`NIH_CLASSES` / :data:`NIH_BOX_CLASSES`: the 14 findings and the 8 that NIH's radiologists boxed;
- :data:`NIH_SIDE`: the 1024 px frame of ``BBox_List_2017.csv``;
- :data:`NIH_BOX_ALIASES`: the box file's spellings that differ from the label file's (``Infiltrate``);
- :func:`nih_key`: the ``Image Index`` inside a file name;
- :func:`read_box_csv`: the one reader of NIH-format box CSVs;
- :func:`match_class` / :func:`is_top1`: how a class name typed by a person is matched to a model's classes.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path
from typing import Sequence

from ..boxes import Box
from ..errors import InputError

#: The 14 NIH ChestX-ray14 findings, in NIH's spelling and the order of its papers.
NIH_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
#: The 8 findings that NIH's radiologists boxed (BBox_List_2017.csv; it spells Infiltration "Infiltrate").
NIH_BOX_CLASSES: tuple[str, ...] = NIH_CLASSES[:8]
#: Side of the NIH originals, the frame of ``BBox_List_2017.csv``.
NIH_SIDE = 1024
#: The box file's spellings that differ from the label file's.
NIH_BOX_ALIASES: dict[str, str] = {"Infiltrate": "Infiltration"}
#: The word a control, the CLI or the API uses for "the model's highest-ranked class".
TOP1 = "top-1"
_TOP1_WORDS = ("", TOP1, "top1", "auto")
_NIH_NAME = re.compile(r"(\d{8}_\d{3})")


def nih_key(name: str) -> str | None:
    """The NIH ``Image Index`` (``00013118_008.png``) inside a file name or path, if there is one."""
    m = _NIH_NAME.search(Path(str(name)).name)
    return f"{m.group(1)}.png" if m else None


def canonical_label(label: str) -> str:
    """``label`` stripped, with NIH's box-file spellings mapped to the label file's (``Infiltrate`` -> ``Infiltration``)."""
    text = str(label).strip()
    return NIH_BOX_ALIASES.get(text, text)


def is_top1(target: str | None) -> bool:
    """True when ``target`` means "the top-1 class" (``None``, empty, ``top-1``, ``top1``, ``auto``)."""
    return target is None or str(target).strip().lower() in _TOP1_WORDS


def _key(label: str) -> str:
    return str(label).strip().lower().replace("_", " ").replace("-", " ")


def match_class(label: str, classes: Sequence[str]) -> str | None:
    """The entry of ``classes`` that ``label`` names, or ``None``.

    Matching ignores case and treats ``_``, ``-`` and spaces alike (``pleural thickening`` names
    ``Pleural_Thickening``); NIH's box-file spelling ``Infiltrate`` names ``Infiltration``.
    """
    label = str(label).strip()
    if label in classes:
        return label
    keys = {_key(c): c for c in classes}
    found = keys.get(_key(label))
    if found is None:
        found = keys.get(_key(canonical_label(label.title() if label.islower() else label)))
    if found is None:
        aliases = {_key(k): v for k, v in NIH_BOX_ALIASES.items()}
        alias = aliases.get(_key(label))
        found = keys.get(_key(alias)) if alias else None
    return found


def read_csv_text(path: str | Path, kind: str = "") -> str:
    """The text of an NIH-format CSV (``.csv``, or ``.csv.gz`` as NIH ships them), BOM removed.

    Raises:
        InputError: the file does not exist (``kind`` names what was expected: ``"label"``, ``"box"``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; give an NIH-format {kind + ' ' if kind else ''}CSV file")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig")


def read_box_csv(path: str | Path) -> dict[str, list[Box]]:
    """``Image Index`` -> boxes in the 1024 px originals' pixels, from an NIH-format box CSV (``.csv`` or ``.gz``).

    Columns: ``Image Index``, ``Finding Label``, ``Bbox [x,y,w,h]`` (4 cells), as ``BBox_List_2017.csv``. Labels are
    canonical (:func:`canonical_label`). Rows with a missing name, non-numeric or empty boxes are skipped.

    Raises:
        InputError: the file is missing or does not start with NIH's header.
    """
    rows = csv.reader(io.StringIO(read_csv_text(path, "box")))
    header = next(rows, None)
    if not header or header[0].strip() != "Image Index":
        raise InputError(f"{path}: a box CSV starts with 'Image Index', 'Finding Label', 'Bbox [x,y,w,h]' (NIH format)")
    out: dict[str, list[Box]] = {}
    for row in rows:
        if len(row) < 6 or not row[0].strip():
            continue
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except ValueError:
            continue
        if w <= 0 or h <= 0:
            continue
        out.setdefault(row[0].strip(), []).append(Box.from_xywh(x, y, w, h, canonical_label(row[1])))
    return out
