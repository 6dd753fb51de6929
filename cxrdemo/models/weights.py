"""Weight sources: resolve a local folder, a Hub id or the embedded default, then load or save safetensors.

Sources (``load_model(source)``):
- ``None`` / ``"default"``: ``$CXRDEMO_WEIGHTS`` if set, else the embedded ``weights/`` folder of this repository
  (or its copy inside an installed wheel, :mod:`cxrdemo.locations`).
- a local folder holding ``config.json`` and ``model.safetensors``.
- ``owner/name`` or ``owner/name@revision``: fetched with :func:`huggingface_hub.hf_hub_download` into the standard
  Hub cache (``HF_HOME`` / ``HF_HUB_CACHE``), revision pinned; ``HF_HUB_OFFLINE=1`` uses the cache only. Each file's
  size is checked against its cap (:mod:`cxrdemo.hubsize`) before it is downloaded, and before a cached copy is read.
  The revision must be a branch or tag name or a commit hash (:func:`cxrdemo.locations.valid_revision`). Pinned to a
  cached commit, a load sends no request; by branch or tag it asks the Hub (metadata only when cached). Missing
  repos, revisions and files, private and gated repos (``HF_TOKEN``), Hub errors and cut connections are one line
  (:mod:`cxrdemo.models.hubfetch` fetches the files).
- ``hf://owner/name[@revision]``: the same Hub id, never looked up as a local folder (what a public server uses).

- ``timm:`` / ``hf:`` / ``xrv:`` prefixes, or a folder whose files are timm's or transformers', or a torchxrayvision
  weight name: a foreign model behind its adapter (:mod:`cxrdemo.models`, ``docs/models.md``).

For cxrdemo's own folders only safetensors are ever loaded; ``.bin`` / ``.pth`` / ``.pt`` / ``.ckpt`` pickles are refused, never opened.
A folder may carry ``model.safetensors.sha256`` (the hex digest); a source may also be pinned with
``sha256=...``: a mismatch is refused, and so is a checksum that is not 64 hex digits.
A config.json whose values have the wrong types or sizes out of bounds, a config whose model would hold more
parameters than its weights file has bytes (checked before the model is built: nothing is allocated), and weights
holding NaN or infinity, are refused at load time (:class:`ConfigError` / :class:`WeightsError`), not left to fail,
to exhaust the memory, or to print NaN probabilities at the first image.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import CONFIG_NAME, ModelConfig
from ..errors import ConfigError, WeightsError
from ..locations import (EMBEDDED_WEIGHTS_DIR, HUB_PREFIX, REVISION_REFUSED, default_source, has_bad_revision, hub_id_or_error,
                         parse_hub_id, path_exists)
from .hubfetch import CARD_NAME, CHECKSUM_NAME, OPTIONAL_FILES, WEIGHTS_NAME, fetch_from_hub, hub_offline, hub_reachable  # noqa: F401 - re-exported
from .cln import MultiTaskNet, build_model, estimate_parameters
from ..provenance import DataSplits, read_splits
from ..publicmode import clip_text

EMBEDDED_DIR = EMBEDDED_WEIGHTS_DIR  # the checkout's weights/ or the wheel's copy (cxrdemo.locations)
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl", ".pickle")


@dataclass(frozen=True)
class WeightsSource:
    """Where a model came from.

    Attributes:
        kind: ``"embedded"``, ``"folder"``, ``"hub"`` or ``"xrv"`` (a torchxrayvision weight name).
        ref: what the user gave (folder path or Hub repo id).
        revision: requested revision for Hub sources, else ``None``.
        commit: resolved Hub commit hash (from the cache snapshot), else ``None``.
        folder: local folder the files were read from.
        name: what the outputs call the model instead of its folder (a public server's model name), or ``None``.
    """

    kind: str
    ref: str
    revision: str | None
    commit: str | None
    folder: Path
    name: str | None = None

    def describe(self) -> str:
        """Short human label, e.g. ``owner/name@main (3f2a1c0)``, a model's name, or a folder path."""
        if self.name:
            return self.name
        if self.kind == "hub":
            rev = f"@{self.revision}" if self.revision else ""
            commit = f" ({self.commit[:7]})" if self.commit else ""
            return f"{self.ref}{rev}{commit}"
        if self.kind == "xrv":
            return f"xrv:{self.ref}"
        return str(self.folder) if self.kind == "folder" else f"embedded ({self.folder.name}/)"


@dataclass
class LoadedModel:
    """A model ready for inference with its config, provenance and weights checksum."""

    model: MultiTaskNet  # or another adapter of cxrdemo.models.AdapterBase (same interface)
    config: ModelConfig
    source: WeightsSource
    sha256: str
    splits: DataSplits | None = None  # the images the model was trained and validated on, when the folder says


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(
            f"{path.name} is a pickle checkpoint; cxrdemo loads safetensors only (pickles can run code): "
            "convert it with safetensors.torch.save_file and add a config.json"
        )


def resolve_source(source: str | os.PathLike | None = None) -> WeightsSource:
    """Turn what the user gave into a local folder holding ``config.json`` and ``model.safetensors``."""
    text = str(source).strip() if source is not None else ""
    if has_bad_revision(text[len(HUB_PREFIX):] if text.startswith(HUB_PREFIX) else text):
        raise WeightsError(REVISION_REFUSED)  # before any file is looked at: such a revision reads as a path
    if text.startswith(HUB_PREFIX):
        hub = parse_hub_id(text[len(HUB_PREFIX):])
        if hub is None:
            raise WeightsError(f"{text[:80]!r} is not a Hub id; write hf://owner/name or hf://owner/name@revision")
        return _fetch_from_hub(*hub)
    if text in ("", "default"):
        text = default_source()
        embedded = Path(text).resolve() == EMBEDDED_DIR
    else:
        embedded = False
    path = Path(text).expanduser()
    if path_exists(path):
        if path.is_file():
            _refuse_pickle(path)
            if path.name in (WEIGHTS_NAME, CONFIG_NAME):
                path = path.parent
            else:
                raise WeightsError(f"{clip_text(path)} is a file; give the folder that holds config.json and model.safetensors")
        return WeightsSource("embedded" if embedded else "folder", text, None, None, path.resolve())
    return _fetch_from_hub(*hub_id_or_error(text))


def _fetch_from_hub(repo_id: str, revision: str | None) -> WeightsSource:
    """A Hub model as a :class:`WeightsSource` (:func:`cxrdemo.models.hubfetch.fetch_from_hub` fetches it)."""
    files = fetch_from_hub(repo_id, revision)
    return WeightsSource("hub", repo_id, revision, files.commit, files.folder)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _expected_sha256(folder: Path, pinned: str | None) -> str | None:
    """The digest ``model.safetensors`` must have: the pin if given, else the folder's checksum file, else None."""
    if pinned:
        value = pinned.strip().lower()
        if not _SHA256.fullmatch(value):
            raise WeightsError(f"sha256 pin {pinned.strip()[:80]!r} is not a sha256 digest; give the 64 hex digits of model.safetensors")
        return value
    checksum = folder / CHECKSUM_NAME
    if checksum.is_file():
        try:
            words = checksum.read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError):
            words = []
        value = words[0].lower() if words else ""
        if not _SHA256.fullmatch(value):
            raise WeightsError(
                f"{checksum} does not hold a sha256 digest (64 hex digits); write the right digest or delete the file"
            )
        return value
    return None


def load_model(
    source: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    sha256: str | None = None,
) -> LoadedModel:
    """Load a model from ``source`` (see module doc) onto ``device`` (default: :func:`cxrdemo.device.pick_device`)."""
    from ..device import pick_device

    from .loader import is_xrv_name, parse_source

    spec = parse_source(str(source)) if source is not None else None
    if spec is not None and (spec.format == "torchxrayvision" or (spec.format is None and is_xrv_name(spec.where) and not path_exists(Path(spec.where)))):
        return _load_adapter("torchxrayvision", None, spec.where, device, sha256)
    resolved = resolve_source(spec.where if spec is not None else None)
    folder = resolved.folder
    fmt = (spec.format if spec is not None else None) or _folder_format(folder)
    if fmt != "cxrdemo":
        return _load_adapter(fmt, resolved, folder, device, sha256)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            _refuse_pickle(folder / pickles[0])
        raise WeightsError(f"no {WEIGHTS_NAME} in {folder}; a model folder needs config.json and {WEIGHTS_NAME}")
    config = _load_config(folder)
    _check_header(weights)  # a pickle or a truncated file named model.safetensors is a weights problem, said first
    check_weights_size(config, weights)
    expected = _expected_sha256(folder, sha256)
    digest = file_sha256(weights)
    if expected and expected != digest:
        raise WeightsError(
            f"{weights} has sha256 {digest[:12]}..., expected {expected[:12]}...; the file is corrupt or was changed: re-download it"
        )
    try:
        model = build_model(config)
    except (RuntimeError, ValueError, TypeError) as exc:  # e.g. a negative layer width that passed validation
        raise ConfigError(f"config.json in {folder} cannot build a model ({_first_line(exc)}); use the config.json saved with these weights") from None
    _load_state(model, weights)
    model.to(pick_device(device))
    return LoadedModel(model.eval(), config, resolved, digest, read_splits(folder))


def check_weights_size(config: ModelConfig, weights: Path) -> None:
    """Refuse, before the model is built, a config whose model would hold more parameters than ``weights`` has bytes.

    The weights must hold every parameter (loading is strict: no tensor missing, every shape equal to the
    parameter's), safetensors stores tensors side by side without overlap, and every dtype torch loads takes at
    least one byte per element (bool, int8, uint8, float8); so a matching file has at least as many bytes as the
    model has parameters, and :func:`~cxrdemo.models.cln.estimate_parameters` is a lower bound of that count. A config failing this cannot match its weights: building its model would only spend memory (a
    ``box_hidden`` of 4096-wide layers is 67 MB per layer, allocated and initialised before the weights are read).
    """
    needed = estimate_parameters(config)
    size = weights.stat().st_size
    if needed > size:
        raise ConfigError(
            f"config.json in {weights.parent} describes a model of at least {needed:,} parameters but {weights.name} has "
            f"only {size:,} bytes (one byte per parameter at the least); use the config.json saved with these weights"
        )


def _folder_format(folder: Path) -> str:
    """The format of a local folder, from its files (:func:`cxrdemo.models.loader.folder_format`)."""
    from .loader import folder_format

    return folder_format(folder)


def _load_adapter(fmt: str, resolved: WeightsSource | None, where: Path | str, device, sha256: str | None) -> LoadedModel:
    """A foreign model (timm, transformers, torchxrayvision) through its adapter, as a :class:`LoadedModel`."""
    from ..device import pick_device
    from .files import weights_file
    from .loader import build_adapter

    if resolved is not None:  # a folder or Hub snapshot: the weights are checked before anything is built
        if fmt == "torchvision":
            from .tv_detector import detector_weights

            path = detector_weights(resolved.folder)  # a state dict as safetensors or a tensor-only .pth
        else:
            path = weights_file(resolved.folder)
        digest = _checked_digest(path, _expected_sha256(resolved.folder, sha256))
        adapter = build_adapter(fmt, where)
    else:  # torchxrayvision: the library's own cache, known once the library has fetched the weights
        adapter = build_adapter(fmt, where)
        path = Path(adapter.net.weights_filename_local)
        resolved = WeightsSource("xrv", str(where), None, None, path.parent)
        digest = _checked_digest(path, _expected_sha256(resolved.folder, sha256) if sha256 else None)
    adapter.to(pick_device(device))
    splits = read_splits(resolved.folder) if resolved.kind != "xrv" else None
    return LoadedModel(adapter.eval(), adapter.config, resolved, digest, splits)  # type: ignore[arg-type]


def _checked_digest(path: Path, expected: str | None) -> str:
    """The sha256 of ``path``; a one-line :class:`WeightsError` when it is not ``expected`` (if given)."""
    digest = file_sha256(path)
    if expected and expected != digest:
        raise WeightsError(f"{path} has sha256 {digest[:12]}..., expected {expected[:12]}...; the file is corrupt or was changed: re-download it")
    return digest


def _first_line(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return (text or exc.__class__.__name__)[:limit]


def _load_config(folder: Path) -> ModelConfig:
    """``config.json`` of a model folder; every check is :meth:`ModelConfig.validate`'s (one line, with the folder)."""
    return ModelConfig.load(folder)


def _unreadable(weights: Path, exc: BaseException) -> WeightsError:
    return WeightsError(f"{weights} is not a readable safetensors file ({str(exc).splitlines()[0][:120]}); re-download it")


def _check_header(weights: Path) -> None:
    """Read only the safetensors header of ``weights`` (no tensor is loaded); one line when it is not safetensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(weights, exc) from None


def _load_state(model: MultiTaskNet, weights: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(weights, exc) from None
    from .files import check_state

    config = model.config
    check_state(model, state, weights, f"config.json ({config.architecture}, {len(config.classes)} classes, {config.num_boxes} boxes)")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise WeightsError(
            f"{weights} holds NaN or infinite values (first in {bad}); the file is corrupt or training diverged: use other weights"
        )
    model.load_state_dict(state, strict=True)


def save_model(model: MultiTaskNet, folder: str | os.PathLike, card: str | None = None) -> Path:
    """Write a Hub-ready folder: ``config.json``, ``model.safetensors``, its ``.sha256`` and a ``README.md`` card.

    ``card`` is the model card text; when ``None`` a card is generated from the config (see :mod:`cxrdemo.modelcard`).
    """
    from safetensors.torch import save_file

    from ..modelcard import render_card

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    model.config.save(out)
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt", "library": "cxrdemo"})
    digest = file_sha256(out / WEIGHTS_NAME)
    (out / CHECKSUM_NAME).write_text(f"{digest}  {WEIGHTS_NAME}\n", encoding="utf-8")
    text = card if card is not None else render_card(model.config, digest)
    (out / CARD_NAME).write_text(text.replace("{sha256}", digest), encoding="utf-8")
    return out


def describe_model(loaded: LoadedModel) -> dict[str, str | None]:
    """The ``model`` block of the JSON outputs: source, revision, architecture."""
    from ..publicmode import is_public

    src = loaded.source
    folder = src.folder.name if is_public() else str(src.folder)  # a public server shows no server path
    info = {
        "source": src.name or (src.ref if src.kind in ("hub", "xrv") else folder),
        "revision": src.commit or src.revision or loaded.sha256[:12],
        "architecture": loaded.config.architecture,
    }
    fmt = getattr(loaded.model, "format_name", "cxrdemo")
    if fmt != "cxrdemo":
        from .files import card_summary

        info["format"] = fmt
        summary = card_summary(getattr(loaded.model, "card", None))
        if summary:
            info["card"] = summary  # the foreign model's own card (README.md), first line of prose
    return info

