"""Where cxrdemo finds its files and models, decided without heavy imports (the CLI checks paths with it before
it loads torch).

- The embedded default model, ``weights/`` at the top of the repository (the design card requires it there).
  From a checkout (``python app.py``, ``pip install -e .``) it is read in place; a wheel (``pip install .``)
  carries a copy as package data in ``cxrdemo/_embedded/weights/`` (``pyproject.toml``, hatchling
  ``force-include``).
- NIH's box list, ``cxrdemo/resources/BBox_List_2017.csv.gz``: package data in both cases.

- A weight source: ``$CXRDEMO_WEIGHTS`` or the embedded folder by default (:func:`default_source`), else
  ``[format:]where`` (:func:`parse_source`): a local folder, a Hub id ``owner/name[@revision]``
  (:func:`hub_id_or_error`; the revision a branch or tag name or a commit hash, :func:`valid_revision`, else the
  one line :data:`REVISION_REFUSED`) or a torchxrayvision weight name; :func:`check_source_shape` refuses, in one line and
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
_HUB_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
#: The characters of a revision and its length cap (git allows more; the Hub's branches, tags and commits need no more).
_REVISION_CHARS = re.compile(r"[A-Za-z0-9_./-]{1,128}")
#: The one answer to any revision that is no branch, tag or commit name: it never echoes the text, so that what the
#: server holds at a path cannot change it (a revision such as ``/proc/self/cmdline`` would otherwise be read as one).
REVISION_REFUSED = (
    "a Hub revision is a branch or tag name (letters, digits, '_', '-', '.', names joined by single '/', "
    "no '..', no leading or trailing '/') or a 40-hex commit hash; use one such as main, v1.0 or a commit hash"
)


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
    if has_bad_revision(where[len(HUB_PREFIX):] if where.startswith(HUB_PREFIX) else where):
        raise WeightsError(REVISION_REFUSED)  # before any file is looked at: such a revision reads as a path
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


def valid_revision(rev: str) -> bool:
    """Whether ``rev`` is a branch or tag name by git's ref rules (``git check-ref-format``: no ``..``, no component
    starting with ``.`` or ending in ``.lock``, no leading, trailing or double ``/``, no trailing ``.``, none of
    space, control characters, ``~^:?*[\\@{``) within cxrdemo's narrower alphabet ``[A-Za-z0-9_./-]`` and at most
    128 characters; a 40-hex commit hash is one such name.

    huggingface_hub joins a revision to its cache folder (``refs/<rev>``) and reads that file when offline, so a
    revision that could be read as a path (``/proc/self/cmdline``, ``../../x``, ``refs/../x``) must never reach it.
    """
    if not _REVISION_CHARS.fullmatch(rev) or rev.startswith("/") or rev.endswith(("/", ".")) or "//" in rev or ".." in rev:
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in rev.split("/"))


def _split_hub_id(text: str) -> tuple[str, str | None] | None:
    """``owner/name[@rev]`` split at its ``@`` when the repo part is Hub-id shaped (the revision not yet checked)."""
    repo, sep, rev = text.partition("@")
    if not _HUB_REPO.fullmatch(repo) or ".." in repo or repo.endswith((".", "-")):
        return None
    return repo, (rev if sep else None)


def has_bad_revision(text: str) -> bool:
    """True when ``text`` is ``owner/name@rev`` with a Hub-id-shaped repo but a revision that is no branch, tag or
    commit name (:func:`valid_revision`): the caller answers :data:`REVISION_REFUSED`. An empty revision
    (``owner/name@``) is not Hub-id shaped (:func:`parse_hub_id` is ``None``) and keeps that answer."""
    split = _split_hub_id(text)
    return split is not None and bool(split[1]) and not valid_revision(split[1])


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """``owner/name[@rev]`` -> ``(repo_id, revision)``; ``None`` when ``text`` is not Hub-id shaped, or when its
    revision is not a branch, tag or commit name (:func:`valid_revision`; :func:`has_bad_revision` tells which)."""
    split = _split_hub_id(text)
    if split is None or (split[1] is not None and not valid_revision(split[1])):
        return None
    return split


def check_revision(revision: str | None) -> None:
    """:data:`REVISION_REFUSED` as a :class:`WeightsError` unless ``revision`` is ``None`` or a valid name: the last
    gate before a revision reaches huggingface_hub (a caller that built its own ``(repo_id, revision)``)."""
    if revision is not None and not valid_revision(revision):
        raise WeightsError(REVISION_REFUSED)


def hub_id_or_error(text: str) -> tuple[str, str | None]:
    """For a weight source ``text`` that is no existing path: its Hub id ``(repo_id, revision)``; a one-line
    :class:`WeightsError` when it is not Hub-id shaped either (a mistyped folder, say)."""
    if has_bad_revision(text):
        raise WeightsError(REVISION_REFUSED)
    hub = parse_hub_id(text)
    if hub is None:
        shown = clip_repr(text)
        if os.sep in text or text.startswith((".", "~")):
            raise WeightsError(f"weights folder {shown} does not exist; give an existing folder or a Hub id owner/name[@revision]")
        raise WeightsError(f"{shown} is neither a folder nor a Hub id; use owner/name or owner/name@revision")
    return hub
