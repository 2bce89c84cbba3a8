"""Process-group helpers for ``torchrun``: the same code runs as one process or many.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them everything here
degrades to a single process with rank 0.
"""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the run.

    Attributes:
        rank: Global rank (0 for a single process).
        local_rank: Rank on this machine (selects the GPU).
        world_size: Number of processes.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and writes checkpoints."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device_type: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes, if any.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``; picks NCCL or gloo. Defaults to CUDA when present.

    Returns:
        This process's :class:`DistInfo`. With ``WORLD_SIZE`` unset or 1, no group is made.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    info = DistInfo(
        rank=_env_int("RANK", 0), local_rank=_env_int("LOCAL_RANK", 0), world_size=world_size
    )
    if world_size <= 1:
        return DistInfo()
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("joined process group: rank %d of %d (%s)", info.rank, world_size, backend)
    return info


def destroy_distributed(wait: bool = True) -> None:
    """Leave the process group, if one was joined.

    Args:
        wait: First wait for every rank, so that no rank tears its connections down while a
            peer is still working (rank 0 writing the last checkpoint, say). Pass ``False`` on
            an error path, where a failed peer would never arrive and the barrier would hang.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    # DDP reducers caught in reference cycles keep the group alive until the interpreter
    # shuts down, and a gloo group freed that late can abort the process (std::terminate).
    # Collect them now, while everything they point to still exists.
    gc.collect()
    if wait:
        dist.barrier()
    dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from rank ``src`` to all ranks (identity for one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def sync_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each training forward, so after the last step
    every rank holds statistics updated by its own last batch. Evaluating with those would
    make rank 1's predictions disagree with the checkpoint that rank 0 writes.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=src)


def all_reduce_sum(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Sum a tensor over ranks (a copy; identity for one process).

    The reduction runs on ``device`` because NCCL only reduces CUDA tensors.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return values
    on_device = values.to(device)
    dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
    return on_device.to(values.device)
