"""Bounds of a foreign model's config (timm, transformers), checked before anything is built.

A config.json read from a stranger's folder or Hub repository decides how big a network timm or transformers
builds: ``num_classes`` 3,000,000 is a 6 GB head, ``num_hidden_layers`` 10^6 a million Python layers, ``img_size``
8192 a 1.8 GB position table. :func:`check_config_bounds` walks the whole JSON object (nested dicts such as timm's
``model_args`` and ``pretrained_cfg`` included) and refuses, with one line, any key of a known kind whose value is
over its bound; :func:`weights_capacity` reads how many values the weights file can hold (the safetensors header
only), which the adapters compare with the parameter count of the model built on torch's ``meta`` device (no memory)
before the real build. This module is torch-free.

Every bound is far above what a chest X-ray classifier needs (ViT-g has 40 layers, 1664 wide, 16 heads; ConvNeXt-XL
36 blocks; ImageNet-22k heads 21,843 classes are the one outlier, over :data:`MAX_CLASSES` on purpose: a
radiograph model has at most a few hundred findings).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WeightsError
from ..publicmode import clip_text
from .config import MAX_CLASSES

#: Most blocks or layers in total (a list such as Swin's ``depths`` counts its sum).
MAX_LAYERS = 128
#: Most units of a hidden, embedding or intermediate width.
MAX_WIDTH = 16384
#: Most attention heads per layer.
MAX_HEADS = 256
#: Largest image side (``image_size``, ``img_size``, timm's ``input_size``...), patch or window side; cxrdemo's own
#: configs stop at the same 2048.
MAX_IMAGE_SIDE = 2048
#: Largest MLP ratio (ViT and Swin use 4).
MAX_RATIO = 16.0
#: Most input channels.
MAX_CHANNELS = 16
#: Most stages (entries of a per-stage list such as ``depths`` or ``hidden_sizes``).
MAX_STAGES = 16
#: Any other integer in a config: nothing in an image classifier's config needs more.
MAX_ANY_INTEGER = 10_000_000
#: Deepest nesting of the JSON object.
MAX_DEPTH = 16
#: What to do about a timm or transformers config over its bounds or larger than its weights.
TIMM_FIX = "use the config.json saved with these weights (timm save_for_hf)"
HF_FIX = "use the config.json saved with these weights (save_pretrained)"

#: The safetensors format's own limit on its JSON header (bytes).
MAX_HEADER_BYTES = 100_000_000

#: key -> (bound, what it counts, whether a list sums): the kinds of sizes bounded by name.
BOUNDED_KEYS: dict[str, tuple[float, str, bool]] = {
    **{k: (MAX_CLASSES, "classes", False) for k in ("num_classes", "num_labels")},
    **{k: (MAX_LAYERS, "layers", True) for k in ("num_hidden_layers", "depth", "depths", "num_layers", "n_layers",
                                                  "layers", "num_blocks", "block_repeats")},
    **{k: (MAX_WIDTH, "units of width", False) for k in ("hidden_size", "intermediate_size", "embed_dim", "embed_dims",
                                                         "hidden_dim", "hidden_sizes", "num_features", "mlp_dim",
                                                         "width", "dim", "dims", "head_hidden_size", "channels")},
    **{k: (MAX_HEADS, "attention heads", False) for k in ("num_attention_heads", "num_heads", "heads")},
    **{k: (MAX_IMAGE_SIDE, "pixels per side", False) for k in ("image_size", "img_size", "input_size", "test_input_size",
                                                                "min_input_size", "crop_size", "patch_size", "window_size",
                                                                "pool_size", "shortest_edge", "longest_edge", "height")},
    **{k: (MAX_CHANNELS, "input channels", False) for k in ("num_channels", "in_chans")},
    "mlp_ratio": (MAX_RATIO, "times the width", False),
}
#: Keys whose entries are class labels: their count is bounded by :data:`MAX_CLASSES`.
LABEL_KEYS = ("id2label", "label2id", "label_names", "labels")


#: An image processor's ``size`` and ``crop_size`` give ``width`` in pixels, not units.
IMAGE_PROCESSOR_KEYS: dict[str, tuple[float, str, bool]] = {"width": (MAX_IMAGE_SIDE, "pixels per side", False)}


def check_folder_bounds(folder: Path, fmt: str) -> None:
    """The bounds of a ``timm`` or ``transformers`` folder's config files (torch-free: the CLI runs it before torch).

    Raises:
        ConfigError: a file missing, unreadable or over a bound (one line).
    """
    from .files import read_json

    fix = TIMM_FIX if fmt == "timm" else HF_FIX
    check_config_bounds(read_json(folder / "config.json"), f"config.json in {folder}", fix)
    if fmt == "transformers":
        check_config_bounds(read_json(folder / "preprocessor_config.json"), f"preprocessor_config.json in {folder}", fix, image_processor=True)


def check_config_bounds(cfg: dict[str, Any], where: str, fix: str, image_processor: bool = False) -> None:
    """Refuse ``cfg`` (a parsed config.json) when a size in it is over its bound (see the module doc).

    Args:
        cfg: the JSON object.
        where: what to name in the message, e.g. ``"config.json in /models/vit"``.
        fix: what to do, ending the message.
        image_processor: ``cfg`` is a ``preprocessor_config.json`` (its ``width`` is an image side).

    Raises:
        ConfigError: one line naming the key, its value (clipped) and the bound.
    """
    rules = {**BOUNDED_KEYS, **IMAGE_PROCESSOR_KEYS} if image_processor else BOUNDED_KEYS
    problem = _walk(cfg, "", 0, rules)
    if problem:
        raise ConfigError(f"{where}: {problem}; {fix}")


def _walk(value: Any, key: str, depth: int, rules: dict[str, tuple[float, str, bool]]) -> str | None:
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        if key in LABEL_KEYS and len(value) > MAX_CLASSES:
            return f"{key!r} has {len(value):,} labels, more than the {MAX_CLASSES} a model may have"
        for k, v in value.items():
            problem = _walk(v, str(k), depth + 1, rules)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        if key in LABEL_KEYS and len(value) > MAX_CLASSES:
            return f"{key!r} has {len(value):,} labels, more than the {MAX_CLASSES} a model may have"
        rule = rules.get(key)
        numbers = [v for v in value if _is_number(v)]
        if rule and numbers:
            bound, what, sums = rule
            if len(value) > MAX_STAGES and key not in ("input_size", "test_input_size", "min_input_size"):
                return f"{key!r} has {len(value):,} entries, more than {MAX_STAGES} stages"
            total = sum(numbers) if sums else max(numbers)
            if not _within(total, bound):
                return f"{key!r} = {_show(value)} is over {bound:g} {what}"
        for v in value:
            problem = _walk(v, key, depth + 1, rules)
            if problem:
                return problem
        return None
    if not _is_number(value):
        return None
    rule = rules.get(key)
    bound, what = (rule[0], rule[1]) if rule else (MAX_ANY_INTEGER, "(no config value needs more)")
    if rule is None and isinstance(value, float):
        return None if math.isfinite(value) else f"{key!r} = {value} is not a finite number"
    if not _within(value, bound):
        return f"{key!r} = {_show(value)} is over {bound:g} {what}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _within(value: float, bound: float) -> bool:
    if isinstance(value, int):
        return -bound <= value <= bound  # exact for ints of any size (math.isfinite overflows past 1e308)
    return math.isfinite(value) and -bound <= value <= bound


def _show(value: Any) -> str:
    """A config value for a one-line message: huge integers as their order of magnitude, lists clipped."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"about 10^{int(math.log10(abs(value)))}"
    if isinstance(value, list):
        return clip_text("[" + ", ".join(_show(v) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]", 60)
    return clip_text(value, 40)


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor shapes a safetensors file declares, from its header alone (no tensor is read).

    Raises:
        WeightsError: the file is not safetensors (header length past the file, or not a JSON object of tensors).
    """
    bad = f"{path} is not a readable safetensors file"
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise WeightsError(f"{bad} (its header claims {length:,} bytes); re-download it")
            header = json.loads(fh.read(length))
    except (OSError, struct.error, ValueError, RecursionError) as exc:
        raise WeightsError(f"{bad} ({exc.__class__.__name__}); re-download it") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{bad} (its header is not a JSON object); re-download it")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise WeightsError(f"{bad} (tensor {clip_text(name, 60)!r} has no valid shape); re-download it")
        shapes[str(name)] = tuple(shape)
    return shapes


def weights_capacity(path: Path) -> int:
    """The most values ``path`` can hold: the elements its safetensors header declares, else (a tensor pickle) its
    size in bytes (every dtype torch loads takes at least one byte per element)."""
    if path.suffix == ".safetensors":
        return sum(math.prod(shape) for shape in safetensors_shapes(path).values())
    return path.stat().st_size


def check_parameter_count(parameters: int, weights: Path, what: str, fix: str) -> None:
    """Refuse a model of ``parameters`` parameters (counted on the ``meta`` device) that ``weights`` cannot fill.

    Raises:
        ConfigError: one line, before the model is built for real.
    """
    capacity = weights_capacity(weights)
    if parameters > capacity:
        raise ConfigError(
            f"{what} has {parameters:,} parameters but {weights.name} holds only {capacity:,} values; {fix}"
        )
