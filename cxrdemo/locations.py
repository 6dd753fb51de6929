"""Where cxrdemo finds its files and models, decided without heavy imports (the CLI checks paths with it before
it loads torch).

- The embedded default model, ``weights/`` at the top of the repository (the design card requires it there).
  From a checkout (``python app.py``, ``pip install -e .``) it is read in place; a wheel (``pip install .``)
  carries a copy as package data in ``cxrdemo/_embedded/weights/`` (``pyproject.toml``, hatchling
  ``force-include``).
- NIH's box list, ``cxrdemo/resources/BBox_List_2017.csv.gz``: package data in both cases.

- A weight source: ``$CXRDEMO_WEIGHTS`` or the embedded folder by default (:func:`default_source`), else
  ``[format:]where`` (:func:`parse_source`): a local folder, a Hub id ``owner/name[@revision]``
  (:func:`hub_id_or_error`) or a torchxrayvision weight name; :func:`check_source_shape` refuses, in one line and
  without torch, a source that can be none of them. :mod:`cxrdemo.models.weights` loads it.

A checkout is recognised by ``pyproject.toml`` beside the package folder, so an unrelated ``weights/`` folder
next to an installed package in ``site-packages`` is never taken for the embedded model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
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


#: cxrdemo's Hub-only form of a source (``hf://owner/name@rev``): never a folder.
HUB_PREFIX = "hf://"
#: Source prefixes -> format names (``hf-hub:`` is timm's own spelling of a Hub id).
PREFIXES: dict[str, str] = {"cxrdemo:": "cxrdemo", "timm:": "timm", "hf-hub:": "timm", "hf:": "transformers", "xrv:": "torchxrayvision", "torchvision:": "torchvision"}
#: The model formats cxrdemo loads.
FORMATS = ("cxrdemo", "timm", "transformers", "torchxrayvision", "torchvision")


@dataclass(frozen=True)
class SourceSpec:
    """A model source split into its format (``None``: read it from the files) and where the model is."""

    format: str | None
    where: str


def parse_source(text: str) -> SourceSpec:
    """``"timm:owner/name@v1"`` -> ``SourceSpec("timm", "owner/name@v1")``; no prefix -> ``format=None``."""
    stripped = text.strip()
    if stripped.lower().startswith(HUB_PREFIX):  # the Hub-only form of an id, not the hf: prefix
        return SourceSpec(None, stripped)
    for prefix, fmt in PREFIXES.items():
        if stripped.lower().startswith(prefix):
            return SourceSpec(fmt, stripped[len(prefix):].strip())
    return SourceSpec(None, stripped)


def looks_like_xrv_name(text: str) -> bool:
    """True when ``text`` has the shape of a torchxrayvision weight name (``densenet121-res224-all``); the library
    itself decides at load time whether the name exists."""
    return "/" not in text and os.sep not in text and bool(re.fullmatch(r"(densenet|resnet)[A-Za-z0-9_.-]{1,60}", text))


def check_source_shape(text: str) -> None:
    """A one-line :class:`WeightsError` when the model source ``text`` can be no model: not the default, not an
    existing path, not a Hub id (bare, ``hf://`` or after a format prefix), not a torchxrayvision name. Imports
    nothing heavy, so the CLI runs it before torch; whether the model loads is decided by loading it."""
    spec = parse_source(text)
    where = spec.where
    if spec.format is None and where in ("", "default"):
        return
    if spec.format == "torchxrayvision" or (spec.format is None and looks_like_xrv_name(where)):
        if not looks_like_xrv_name(where):
            raise WeightsError(f"{clip_repr(where)} is not a torchxrayvision weight name; use one such as xrv:densenet121-res224-all")
        return
    if path_exists(Path(where).expanduser()):
        return
    if where.startswith(HUB_PREFIX):
        if parse_hub_id(where[len(HUB_PREFIX):]) is None:
            raise WeightsError(f"{clip_repr(where)} is not a Hub id; write hf://owner/name or hf://owner/name@revision")
        return
    hub_id_or_error(where)


def clip_repr(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut to ``limit`` characters so that an error message stays one readable line."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 3] + "...")


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
        shown = clip_repr(text)
        if os.sep in text or text.startswith((".", "~")):
            raise WeightsError(f"weights folder {shown} does not exist; give an existing folder or a Hub id owner/name[@revision]")
        raise WeightsError(f"{shown} is neither a folder nor a Hub id; use owner/name or owner/name@revision")
    return hub
