"""Where cxrdemo finds its files and models, decided without heavy imports (the CLI checks paths with it before
it loads torch).

- The embedded default model, ``weights/`` at the top of the repository (the design card requires it there).
  From a checkout (``python app.py``, ``pip install -e .``) it is read in place; a wheel (``pip install .``)
  carries a copy as package data in ``cxrdemo/_embedded/weights/`` (``pyproject.toml``, hatchling
  ``force-include``).
- NIH's box list, ``cxrdemo/resources/BBox_List_2017.csv.gz``: package data in both cases.

- A weight source: ``$CXRDEMO_WEIGHTS`` or the embedded folder by default (:func:`default_source`), else a local
  folder or a Hub id ``owner/name[@revision]`` (:func:`hub_id_or_error`); :mod:`cxrdemo.weights` loads it.

A checkout is recognised by ``pyproject.toml`` beside the package folder, so an unrelated ``weights/`` folder
next to an installed package in ``site-packages`` is never taken for the embedded model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import WeightsError

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
#: The environment variable naming the default weight source.
ENV_WEIGHTS = "CXRDEMO_WEIGHTS"
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})(?:@(?P<rev>[A-Za-z0-9_./-]{1,200}))?$")


def default_source() -> str:
    """The default weight source: ``$CXRDEMO_WEIGHTS`` or the embedded folder."""
    return os.environ.get(ENV_WEIGHTS) or str(EMBEDDED_WEIGHTS_DIR)


def path_exists(path: Path) -> bool:
    """``path.exists()`` that says ``False`` instead of raising for names the OS refuses (too long, NUL...)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """``owner/name[@rev]`` -> ``(repo_id, revision)``; ``None`` when ``text`` is not Hub-id shaped."""
    m = _HUB_ID.match(text)
    if not m or ".." in text or text.endswith((".", "-")):
        return None
    return m.group("repo"), m.group("rev")


def hub_id_or_error(text: str) -> tuple[str, str | None]:
    """For a weight source ``text`` that is no existing path: its Hub id ``(repo_id, revision)``; a one-line
    :class:`WeightsError` when it is not Hub-id shaped either (a mistyped folder, say)."""
    hub = parse_hub_id(text)
    if hub is None:
        shown = repr(text) if len(text) <= 80 else repr(text[:77] + "...")  # the message stays one readable line
        if os.sep in text or text.startswith((".", "~")):
            raise WeightsError(f"weights folder {shown} does not exist; give an existing folder or a Hub id owner/name[@revision]")
        raise WeightsError(f"{shown} is neither a folder nor a Hub id; use owner/name or owner/name@revision")
    return hub
