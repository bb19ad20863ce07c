"""Data parallelism through ``torch.distributed``: process group, model wrapping, sharding.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process takes an equal, contiguous
slice of each global batch; the loss of every slice is divided by the N of the
*global* batch and gradients are summed across processes, so N processes take
exactly the optimizer step one process would take on the whole batch. The model
is replicated (DDP) or sharded (FSDP, ``fully_shard``) for models that do not fit
one device. CUDA uses NCCL, CPU uses gloo::

    torchrun --nproc_per_node 8 -m swirl_agents.train --data filtered.jsonl --model M --fsdp
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job.

    Attributes:
        rank: This process's index (0 is the one that logs and writes files).
        world_size: Number of processes.
        device: The device this process trains on.
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that logs, shows progress and writes shared files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistributedContext:
    """Join the ``torchrun`` process group if there is one and pick this process's device.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; None picks the GPU numbered by
            ``LOCAL_RANK`` when CUDA is available, else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistributedContext(rank=rank, world_size=world_size, device=resolved)


def close_distributed(*, synchronize: bool = False) -> None:
    """Leave the process group (if one was joined).

    Args:
        synchronize: Wait for every process first (after a run that succeeded everywhere):
            a process that tears its group down while a peer is still working can make the
            peer's gloo threads abort it.
    """
    if dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext, *, fsdp: bool) -> nn.Module:
    """Replicate (DDP) or shard (FSDP) the model across processes; unchanged for one process.

    FSDP shards every transformer block (the classes a Hugging Face model lists in
    ``_no_split_modules``) and then the root, so only one block's full weights are
    materialised at a time.
    """
    if fsdp:
        if not context.distributed:
            raise ValueError("fsdp=True needs several processes; launch with torchrun.")
        from torch.distributed.fsdp import fully_shard

        block_names = set(getattr(_base_model(model), "_no_split_modules", None) or ())
        for module in model.modules():
            if type(module).__name__ in block_names:
                fully_shard(module)
        fully_shard(model)
        return model
    if not context.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (FSDP shards in place and keeps the model)."""
    return getattr(model, "module", model)


def _base_model(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper, if any."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the cross-process gradient reduction on accumulation micro-batches.

    Gradients are then reduced once, on the last micro-batch of the step.
    """
    if enabled:
        yield
    elif hasattr(model, "no_sync"):  # DDP
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP (fully_shard)
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def shard(items: Sequence[T], context: DistributedContext) -> list[T]:
    """This process's contiguous slice of a global batch (the batch must split evenly)."""
    if len(items) % context.world_size:
        raise ValueError(
            f"a global batch of {len(items)} does not split over {context.world_size} processes."
        )
    size = len(items) // context.world_size
    return list(items[context.rank * size : (context.rank + 1) * size])


def all_reduce_sum(values: Sequence[float], context: DistributedContext) -> list[float]:
    """Sum numbers over all processes (identity for one process)."""
    if not context.distributed:
        return [float(value) for value in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device(context))
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op for one process)."""
    if context.distributed:
        dist.barrier()


def _comm_device(context: DistributedContext) -> torch.device:
    return context.device if context.device.type == "cuda" else torch.device("cpu")
