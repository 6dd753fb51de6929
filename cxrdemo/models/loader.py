"""Which format a model source is, and the adapter that loads it.

A source is ``[format:]where``: ``where`` is a folder, a Hub id ``owner/name[@rev]`` or (for ``xrv:``) a
torchxrayvision weight name; ``format`` is ``cxrdemo:``, ``timm:`` (or timm's own ``hf-hub:``), ``hf:``
(transformers: classifiers and object detectors), ``torchvision:`` (torchvision detectors) or ``xrv:``. Without a prefix the format is read from the files: ``config.json`` with
``format_version`` is cxrdemo's own; with ``pretrained_cfg`` or timm's legacy flat keys (``architecture`` and
``labels``/``num_classes``) it is timm; with ``model_type`` and a ``preprocessor_config.json`` it is transformers (an object detector when
``architectures`` ends in ``ForObjectDetection``); with a ``builder`` and ``classes`` it is a torchvision detector.
A bare torchxrayvision weight name (``densenet121-res224-all``) that is not a folder is torchxrayvision.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, WeightsError
from ..locations import FORMATS, PREFIXES, SourceSpec, parse_source  # torch-free: the CLI checks sources before torch
from .files import read_json

__all__ = ["FORMATS", "PREFIXES", "SourceSpec", "parse_source", "is_xrv_name", "detect_format", "folder_format", "build_adapter"]


def is_xrv_name(text: str) -> bool:
    """True when ``text`` is one of torchxrayvision's weight names (without importing it when it cannot be)."""
    if "/" in text or not text.startswith(("densenet", "resnet")):
        return False
    from .xrv_adapter import xrv_weight_names

    return text in xrv_weight_names()


def detect_format(folder: Path) -> str:
    """The format of a model folder, from its files (see module doc); :class:`ConfigError` when none fits."""
    cfg = read_json(folder / "config.json")
    if "format_version" in cfg:
        return "cxrdemo"
    if "pretrained_cfg" in cfg or ("architecture" in cfg and ("labels" in cfg or "num_classes" in cfg)):
        return "timm"
    if isinstance(cfg.get("builder"), str) and "classes" in cfg:
        return "torchvision"
    if "model_type" in cfg and (folder / "preprocessor_config.json").is_file():
        return "transformers"
    if "model_type" in cfg:
        raise ConfigError(f"{folder} looks like a transformers model but has no preprocessor_config.json; add the model's image processor config")
    raise ConfigError(f"config.json in {folder} is neither cxrdemo's, timm's nor transformers'; prefix the source with timm:, hf: or xrv:")


def folder_format(folder: Path) -> str:
    """``"cxrdemo"`` unless the folder's config.json is recognisably timm's or transformers' (:func:`detect_format`).

    A config.json that is missing, unreadable or only holds :class:`~cxrdemo.models.config.ModelConfig` keys is left
    to cxrdemo's own loader, whose errors say what is wrong with it. Torch-free (the CLI calls it before torch).
    """
    import dataclasses
    import json

    from .config import CONFIG_NAME, MAX_CONFIG_BYTES, ModelConfig

    try:
        path = folder / CONFIG_NAME
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return "cxrdemo"  # cxrdemo's loader refuses it by its size, before reading it
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return "cxrdemo"
    if not isinstance(cfg, dict) or "format_version" in cfg or set(cfg) <= {f.name for f in dataclasses.fields(ModelConfig)}:
        return "cxrdemo"
    try:
        return detect_format(folder)
    except ConfigError:
        return "cxrdemo"


def build_adapter(fmt: str, folder_or_name: Path | str):
    """The adapter of a foreign format (``timm``, ``transformers``, ``torchvision``, ``torchxrayvision``) for a folder
    or xrv name."""
    if fmt == "timm":
        from .timm_adapter import TimmAdapter

        return TimmAdapter(Path(folder_or_name))
    if fmt == "transformers":
        from .hf_detector import HfDetector, is_detector_config

        if is_detector_config(read_json(Path(folder_or_name) / "config.json")):
            return HfDetector(Path(folder_or_name))
        from .hf_adapter import HfAdapter

        return HfAdapter(Path(folder_or_name))
    if fmt == "torchvision":
        from .tv_detector import TvDetector

        return TvDetector(Path(folder_or_name))
    if fmt == "torchxrayvision":
        from .xrv_adapter import XrvAdapter

        return XrvAdapter(str(folder_or_name))
    raise WeightsError(f"unknown model format {fmt!r}; use one of {', '.join(FORMATS)}")
