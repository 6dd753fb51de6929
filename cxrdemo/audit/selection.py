"""Which images an audit runs on: a names file, the first N labelled images (boxed first), the images a model saw
while it was made, a seeded subset for the slow parts (ROAD, sanity). Torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InputError
from ..datasets.samples import Sample, read_label_csv

if TYPE_CHECKING:
    from ..provenance import DataSplits

#: What the CLI tells a user about images the model has seen (the app: its own control).
CLI_UNSEEN_HINT = "add --unseen to skip them"


def read_names(path: str | Path) -> list[str]:
    """File names listed one per line (blank lines and ``#`` comments ignored)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def seen_images(
    samples: Sequence[Sample], splits: "DataSplits | None", drop: bool = False, hint: str = CLI_UNSEEN_HINT
) -> tuple[list[Sample], list[str]]:
    """The samples to evaluate and one-line notes on those the model was trained or validated on.

    With ``drop`` they are removed (``--unseen``); otherwise they stay and the note says the numbers are not a test,
    then ``hint`` (what the caller's interface offers to skip them).
    """
    if splits is None:
        return list(samples), []
    roles = [splits.role(s.name) for s in samples]
    n_train, n_val = roles.count("train"), roles.count("validation")
    if not n_train and not n_val:
        return list(samples), []
    seen = f"{n_train} of the {len(samples)} images are this model's training images and {n_val} its validation images"
    if drop:
        kept = [s for s, r in zip(samples, roles) if r is None]
        return kept, [f"{seen}; they were left out: {len(kept)} images the model never saw remain"]
    return list(samples), [f"{seen}: these numbers are not a test of the model; {hint}"]


def first_labelled(files: Sequence[str], labelled: Sequence[str] | set[str], boxed: set[str], limit: int) -> list[str]:
    """The first ``limit`` of ``files`` (sorted) that have a label row, those with a ground-truth box first: the
    rule of ``evaluate --limit`` and of the audit page's *Images* (the map metrics and the gallery need boxes)."""
    known = set(labelled)
    ordered = sorted(f for f in files if f in known)
    return ([f for f in ordered if f in boxed] + [f for f in ordered if f not in boxed])[: max(0, int(limit))]


def boxed_first(samples: Sequence[Sample]) -> list[Sample]:
    """``samples`` with those that have a ground-truth box first, each group in its own order: the order an audit
    processes (and batches) them in, so that a run stopped early has scored as many boxes as it could. Choosing the
    boxed images first (:func:`first_labelled`) was not enough: the samples were then read back in name order."""
    return [s for s in samples if s.boxes] + [s for s in samples if not s.boxes]


def limit_names(images: str | Path, labels: str | Path, boxes: str | Path | None, limit: int, names: Sequence[str] | None = None) -> list[str]:
    """:func:`first_labelled` of the image folder (restricted to ``names`` when given).

    Raises:
        InputError: no image of the folder has a label row.
    """
    from ..datasets.nih import read_box_csv

    files = sorted(_folder_images(images))
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f in wanted]
    boxed = set(read_box_csv(boxes)) if boxes else set()
    chosen = first_labelled(files, set(read_label_csv(labels)), boxed, limit)
    if not chosen:
        raise InputError(f"no image of {images} has a row in {Path(labels).name}")
    return chosen


def choose_subset(names: Sequence[str], k: int, seed: int) -> frozenset[str]:
    """``k`` of ``names`` (all when ``k <= 0`` or ``k >= len``), a seeded choice: the same on every rank."""
    if k <= 0 or k >= len(names):
        return frozenset(names)
    picked = np.sort(np.random.default_rng(seed).choice(len(names), size=k, replace=False))
    return frozenset(names[int(i)] for i in picked)


def _folder_images(images: str | Path) -> set[str]:
    from ..imaging import IMAGE_SUFFIXES

    return {p.name for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
