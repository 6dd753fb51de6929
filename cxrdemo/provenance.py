"""Which images a model saw while it was made: ``data_splits.json`` beside its weights.

A validation demo on NIH images must not pass off what a model fitted as what it can do. The shipped default model
is the plainest case: NIH's list has one Atelectasis box among its training images, so the model's Atelectasis
box (the per-class prior) *is* that box, and on that training image the "IoU" is 0.998. ``cxrdemo train`` therefore
writes the names of its training and validation images into the model folder, and every analysis of an image
from either list carries a note that says so (the app shows it as a warning, the CLI on stderr).

Format (a Hub-ready model folder may carry it; it is optional)::

    {"train": ["00000001_000.png", ...], "validation": ["00000013_005.png", ...]}

Names are matched by NIH ``Image Index`` when the file name contains one (``00000468_017.dcm`` matches
``00000468_017.png``), else by the file's own name. Names only: no pixels of the images are stored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import ConfigError
from .datasets.nih import nih_key

SPLITS_NAME = "data_splits.json"


def image_key(name: str) -> str:
    """The key an image is known by: its NIH ``Image Index`` when the name holds one, else its file name."""
    return nih_key(name) or Path(str(name)).name


@dataclass(frozen=True)
class DataSplits:
    """The images a model was fitted on (``train``) and tuned on (``validation``: best epoch, thresholds)."""

    train: frozenset[str]
    validation: frozenset[str]

    def role(self, image: str) -> str | None:
        """``"train"``, ``"validation"`` or ``None`` (the model never saw this image)."""
        key = image_key(image)
        if key in self.train:
            return "train"
        if key in self.validation:
            return "validation"
        return None

    def note(self, image: str) -> str | None:
        """A one-line warning for an image the model saw, else ``None``."""
        role = self.role(image)
        if role == "train":
            return (
                "this image is one of this model's training images: its scores, boxes and IoUs show what the model "
                "fitted, not how it does on new films"
            )
        if role == "validation":
            return (
                "this image is in this model's validation split (used to pick its epoch and decision thresholds): "
                "its numbers are optimistic"
            )
        return None


def read_splits(folder: str | os.PathLike) -> DataSplits | None:
    """The ``data_splits.json`` of a model folder; ``None`` when the folder has none."""
    path = Path(folder) / SPLITS_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        lists = {k: doc.get(k, []) for k in ("train", "validation")}
        if not all(isinstance(v, list) and all(isinstance(n, str) for n in v) for v in lists.values()):
            raise ValueError("'train' and 'validation' must be lists of file names")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not a valid {SPLITS_NAME} ({str(exc).splitlines()[0][:100]}); fix it or delete it") from None
    return DataSplits(frozenset(map(image_key, lists["train"])), frozenset(map(image_key, lists["validation"])))


def write_splits(folder: str | os.PathLike, train: Iterable[str], validation: Iterable[str]) -> Path:
    """Write ``data_splits.json`` (sorted image keys) into ``folder``; returns its path."""
    path = Path(folder) / SPLITS_NAME
    doc = {"train": sorted({image_key(n) for n in train}), "validation": sorted({image_key(n) for n in validation})}
    path.write_text(json.dumps(doc, indent=0) + "\n", encoding="utf-8")
    return path
