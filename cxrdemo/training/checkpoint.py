"""Resumable training checkpoints without pickles: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``model.safetensors`` (model state), ``optimizer.safetensors`` (the optimizer's per-
parameter tensors, flattened as ``"<param index>/<name>"``) and ``state.json`` (epoch, stage, best score, history,
the optimizer's non-tensor state and param groups, the scheduler's state, the run's arguments). It is written to a
temporary folder and renamed, so an interrupted write never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

STATE_NAME = "state.json"
MODEL_NAME = "model.safetensors"
OPTIM_NAME = "optimizer.safetensors"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's state dict (contiguous, for safetensors)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
    """Write model, optimizer and ``state`` to ``folder`` atomically; returns the folder."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(model_state(model), str(tmp / MODEL_NAME))
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in opt["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}/{name}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    save_file(tensors, str(tmp / OPTIM_NAME))
    doc = dict(state)
    doc["optimizer"] = {"param_groups": opt["param_groups"], "scalars": scalars}
    (tmp / STATE_NAME).write_text(json.dumps(_jsonable(doc), indent=1) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def read_state(folder: str | Path) -> dict[str, Any] | None:
    """The ``state.json`` of a checkpoint folder, or ``None`` when there is no complete checkpoint."""
    path = Path(folder) / STATE_NAME
    if not path.is_file() or not (Path(folder) / MODEL_NAME).is_file():
        return None
    return _unjson(json.loads(path.read_text(encoding="utf-8")))


def load_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer`` when given) from ``folder``; returns the saved state."""
    folder = Path(folder)
    state = read_state(folder)
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {folder}")
    model.load_state_dict(load_file(str(folder / MODEL_NAME)), strict=True)
    if optimizer is not None:
        tensors = load_file(str(folder / OPTIM_NAME))
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            idx, name = key.split("/", 1)
            per_param.setdefault(int(idx), {})[name] = value
        for idx, entry in state["optimizer"]["scalars"].items():
            per_param.setdefault(int(idx), {}).update(entry)
        optimizer.load_state_dict({"state": per_param, "param_groups": state["optimizer"]["param_groups"]})
    return state
