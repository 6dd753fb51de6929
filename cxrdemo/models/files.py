"""Reading a foreign model's files safely: JSON, weights (safetensors first) and the model card.

Safetensors are preferred. A ``pytorch_model.bin`` is read only with ``torch.load(weights_only=True)`` (tensors, no
code); every other pickle is refused. Nothing here imports or runs code from a model repository. The module is
torch-free until a weights file is read (the CLI reads configs with it before torch is imported).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, WeightsError

SAFE_NAMES = ("model.safetensors",)
TENSOR_PICKLE_NAMES = ("pytorch_model.bin",)
CARD_NAMES = ("README.md", "MODEL_CARD.md")

if TYPE_CHECKING:
    import torch


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`ConfigError` with one line when it is missing, malformed, nested too deep
    or larger than :data:`~cxrdemo.models.config.MAX_CONFIG_BYTES` (checked before it is read)."""
    from .config import MAX_CONFIG_BYTES

    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path.name} in {path.parent} has {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a model config may have; "
                "re-download or re-export the model"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no {path.name} in {path.parent}; the model folder is incomplete: re-download it") from None
    except (ValueError, RecursionError, OSError) as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit number
        raise ConfigError(f"{path} is not valid JSON ({exc.__class__.__name__}); re-download or re-export the model") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; re-download or re-export the model")
    return data


def weights_file(folder: Path) -> Path:
    """The weights file of a foreign model folder: ``model.safetensors``, else ``pytorch_model.bin``."""
    for name in SAFE_NAMES + TENSOR_PICKLE_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"no model.safetensors (or pytorch_model.bin) in {folder}; give a folder with the model's weights")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a tensor-only pickle with ``weights_only=True``; finite values only."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line for the user
        first = " ".join(str(exc).split())[:120] or exc.__class__.__name__
        raise WeightsError(f"{path} is not a readable weights file ({first}); re-download it or convert it to safetensors") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a plain state dict of tensors; convert it to model.safetensors")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise WeightsError(f"{path} holds NaN or infinite values (first in {bad}); the file is corrupt: use other weights")
    return state


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the first mismatch."""
    check_state(model, state, path, what)
    model.load_state_dict(state, strict=True)


def check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """A one-line :class:`ConfigError` when ``state`` (read from ``path``) does not hold exactly ``model``'s tensors
    with their shapes: counts of missing, unexpected and misshapen tensors and the first of them; ``what`` names
    what the file should match (e.g. ``"config.json (efficientnet_lite0, 14 classes, 8 boxes)"``)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_shapes(expected, {k: tuple(v.shape) for k, v in state.items()}, path, what)


def count_parameters(model: torch.nn.Module) -> int:
    """The number of parameter values of ``model`` (shared parameters once); works on the ``meta`` device."""
    return sum(p.numel() for p in model.parameters())


def check_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], path: Path, what: str) -> None:
    """:func:`check_state` on shapes alone (``expected`` from a model, possibly built on the ``meta`` device;
    ``found`` from a safetensors header): a one-line :class:`ConfigError` naming the counts and up to three names."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        raise ConfigError(
            f"{path.name} does not match {what}: {len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} "
            f"misshapen tensors ({first_names(wrong, missing, unexpected)}); use the config.json saved with these weights"
        )


def first_names(wrong: list[str], missing: list[str], unexpected: list[str], shown: int = 3) -> str:
    """``"misshapen: a; missing: b, c; unexpected: d"``: up to ``shown`` names of each non-empty group, clipped."""
    from ..publicmode import clip_text

    parts = []
    for label, names in (("misshapen", wrong), ("missing", missing), ("unexpected", unexpected)):
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            parts.append(f"{label}: {', '.join(clip_text(n, 60) for n in names[:shown])}{more}")
    return "; ".join(parts)


def read_card(folder: Path, limit: int = 20000) -> str | None:
    """The model card (README.md) of a folder, cut to ``limit`` characters, or ``None``."""
    for name in CARD_NAMES:
        path = folder / name
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8", errors="replace")[:limit]
            except OSError:
                return None
    return None


def card_summary(card: str | None, limit: int = 200) -> str | None:
    """The first line of prose of a model card (front matter, headings, badges and HTML skipped), plain and clipped."""
    import re

    from ..publicmode import clip_text

    if not card:
        return None
    text = re.sub(r"\A---\n.*?\n---\n", "", card.replace("\r\n", "\n"), flags=re.S)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "<", "![", "[!", "|", "```", "---")):
            continue
        plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)  # links and images -> their text
        plain = re.sub(r"[<>*_`]", "", re.sub(r"<[^>]*>", "", plain)).strip()  # tags, then stray markup
        if plain:
            return clip_text(plain, limit)
    return None
