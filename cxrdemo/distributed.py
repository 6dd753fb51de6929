"""Data-parallel training under ``torchrun``: process group, rank-0 decisions, state broadcast.

``torchrun --nproc_per_node N -m cxrdemo train ...`` starts N copies of the training; each reads ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` from the environment. :func:`setup` joins the process group (``nccl`` when the
processes train on CUDA, ``gloo`` on CPU), pins each process to its GPU (``cuda:LOCAL_RANK``), and returns a
:class:`DistContext`. Without those variables (a plain ``python -m cxrdemo train``) it returns a single-process
context and nothing else changes.

Rules the training loop follows (see :mod:`cxrdemo.training.train`):
- the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (gradients all-reduced, averaged);
  it is re-wrapped whenever the set of trainable parameters changes (head warm-up -> unfrozen backbone -> stage 2);
- each process sees its shard of the training images through a :class:`~torch.utils.data.DistributedSampler`,
  reseeded per epoch with ``set_epoch``;
- rank 0 alone validates, writes files (log, checkpoint, best weights, model folder) and prints; every decision that
  changes control flow (the monitor value, early stop, the time budget) is rank 0's, broadcast to all, so the
  processes never diverge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import InputError


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: torch.device | None = None
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, writes and prints."""
        return self.rank == 0

    # -- collectives (no-ops with one process) ---------------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" and self.device is not None else torch.device("cpu")

    def broadcast_floats(self, values: list[float | None]) -> list[float | None]:
        """Rank 0's ``values`` on every rank (``None`` travels as NaN)."""
        if not self.enabled:
            return values
        import math

        import torch.distributed as dist

        t = torch.tensor([float("nan") if v is None else float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.broadcast(t, src=0)
        return [None if math.isnan(v) else v for v in t.tolist()]

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        return bool(self.broadcast_floats([1.0 if flag else 0.0])[0])

    def sum_floats(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def broadcast_state(self, model: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``model`` (e.g. after rank 0 loaded best weights)."""
        if not self.enabled:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in model.state_dict().values():
                if self.backend == "nccl" or tensor.device.type == "cpu":
                    dist.broadcast(tensor, src=0)
                else:  # gloo: through a CPU copy
                    buf = tensor.detach().to("cpu")
                    dist.broadcast(buf, src=0)
                    tensor.copy_(buf)

    def wrap(self, model: nn.Module, find_unused: bool = False) -> nn.Module:
        """``model`` in DistributedDataParallel over its CURRENTLY trainable parameters (itself with one process).

        ``find_unused``: some trainable parameters may get no gradient on a rank in a step (stage 2: a batch without
        a ground-truth box leaves the box head out of the loss).
        """
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        if not any(p.requires_grad for p in model.parameters()):
            return model
        ids = [self.local_rank] if self.device is not None and self.device.type == "cuda" else None
        # broadcast_buffers=False: frozen stages keep fixed BatchNorm statistics; the trainable ones are in sync
        # because every rank starts from the same state and applies the same averaged gradients.
        import warnings

        with warnings.catch_warnings():  # torch >= 2.10 renames broadcast_buffers; its meaning here is unchanged
            warnings.simplefilter("ignore", FutureWarning)
            return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False, find_unused_parameters=find_unused)

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise InputError(f"environment variable {name}={os.environ.get(name)!r} is not an integer") from None


def setup(requested_device: str | None) -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; pick this process's device."""
    from .device import pick_device

    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext(device=pick_device(requested_device))
    import torch.distributed as dist

    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    name = (requested_device or "auto").strip().lower()
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        device, backend = torch.device("cpu"), "gloo"
    elif name in ("auto", "cuda") or name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {requested_device!r} asked for under torchrun but no CUDA GPU is available; use --device cpu")
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"torchrun started {local_world} processes on this machine but it has {torch.cuda.device_count()} GPU(s); "
                "use --nproc_per_node <= the GPU count"
            )
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        raise InputError(f"device {requested_device!r} is not supported under torchrun; use auto, cpu or cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, local_world, device, backend)


def unwrap(model: Any) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or ``model`` itself)."""
    return getattr(model, "module", model)
