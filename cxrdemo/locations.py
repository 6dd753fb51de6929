"""Where cxrdemo finds the files that ship beside its code (no heavy imports: the CLI checks paths with it).

- The embedded default model, ``weights/`` at the top of the repository (the design card requires it there).
  From a checkout (``python app.py``, ``pip install -e .``) it is read in place; a wheel (``pip install .``)
  carries a copy as package data in ``cxrdemo/_embedded/weights/`` (``pyproject.toml``, hatchling
  ``force-include``).
- NIH's box list, ``cxrdemo/resources/BBox_List_2017.csv.gz``: package data in both cases.

A checkout is recognised by ``pyproject.toml`` beside the package folder, so an unrelated ``weights/`` folder
next to an installed package in ``site-packages`` is never taken for the embedded model.
"""

from __future__ import annotations

from pathlib import Path

#: The ``cxrdemo`` package folder.
PACKAGE_DIR = Path(__file__).resolve().parent
#: Where a wheel puts the shipped top-level folders.
PACKAGED_DIR = PACKAGE_DIR / "_embedded"


def checkout_root() -> Path | None:
    """The repository root when the package runs from a checkout (``pyproject.toml`` beside it), else ``None``."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def shipped_dir(name: str) -> Path:
    """The shipped top-level folder ``name`` (``"weights"``): the checkout's own, else the wheel's copy."""
    root = checkout_root()
    if root is not None and (root / name).is_dir():
        return root / name
    return PACKAGED_DIR / name


#: The embedded default model folder (config.json, model.safetensors, card).
EMBEDDED_WEIGHTS_DIR = shipped_dir("weights")
#: NIH's box list (``BBox_List_2017.csv``, gzip), shipped inside the package.
NIH_BOX_LIST = PACKAGE_DIR / "resources" / "BBox_List_2017.csv.gz"
