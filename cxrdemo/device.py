"""Device choice: CUDA, then Apple MPS, then CPU, unless the caller names one."""

from __future__ import annotations

import torch

from .errors import InputError
from .publicmode import clip_text


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``requested`` if given and available, else CUDA > MPS > CPU.

    ``requested`` may be ``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; an unavailable one
    raises :class:`InputError` rather than silently falling back.
    """
    if isinstance(requested, torch.device):
        requested = str(requested)
    name = (requested or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {clip_text(requested)!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {clip_text(requested)!r} asked for but no CUDA GPU is available here; use auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {clip_text(requested)!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {clip_text(requested)!r} asked for but Apple MPS is not available here; use auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {clip_text(requested)!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


def available_devices() -> list[str]:
    """Device names a user can choose on this machine (for the app's dropdown)."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names
