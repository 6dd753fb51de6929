"""The ground-truth layouts' names: the prefixes that force a layout (``vindr:annotations_train.csv``).

Standard library only, so the CLI can strip a prefix from ``--labels`` / ``--boxes`` before it checks the path,
without importing the readers (:data:`cxrdemo.datasets.loader.REGISTRY` holds the same names; a test checks it).
"""

from __future__ import annotations

LAYOUT_NAMES: tuple[str, ...] = (
    "nih", "vindr", "vinbigdata", "rsna", "chestxdet", "chexlocalize", "siim", "mscxr", "coco", "chexpert",
)


def strip_layout(spec: str) -> str:
    """The path of ``"[layout:]path"`` (a prefix counts only when it names a layout, so ``C:\\x`` stays a path)."""
    head, sep, tail = str(spec).partition(":")
    return tail.strip() if sep and head.strip().lower() in LAYOUT_NAMES else str(spec)


__all__ = ["LAYOUT_NAMES", "strip_layout"]
