"""Several processes (GPUs, or CPU processes for tests) through ``torchrun``: DDP data parallelism.

``torchrun --nproc_per_node=N -m qc.cli train ...`` sets WORLD_SIZE, RANK and LOCAL_RANK; with
WORLD_SIZE > 1 the process group is started (NCCL on CUDA, gloo on CPU), the network is wrapped in
DistributedDataParallel, and each rank draws its own crops (its own data seed). Only rank 0 writes
logs, TensorBoard events, checkpoints and the run folder.

Decisions that depend on the clock (stop at the time budget, validate, mine hard negatives, write a
checkpoint, stop early) are taken by rank 0 and broadcast every step: ranks deciding on their own
clocks would take different numbers of steps, and DDP would wait forever for the missing ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank if self.enabled else torch.cuda.current_device())
        return torch.device("cpu")


def from_environment() -> Distributed:
    """The torchrun environment, or a single process when WORLD_SIZE is unset or 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    return Distributed(
        rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def start(ctx: Distributed) -> None:
    """Join the process group (idempotent); a no-op for a single process."""
    if not ctx.enabled or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def stop(ctx: Distributed) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(net: torch.nn.Module, ctx: Distributed, device: torch.device) -> torch.nn.Module:
    if not ctx.enabled:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    return getattr(net, "module", net)


def broadcast_flags(ctx: Distributed, flags: list[int], device: torch.device) -> list[int]:
    """Rank 0's flags on every rank (identity for a single process)."""
    if not ctx.enabled:
        return flags
    tensor = torch.tensor(flags, dtype=torch.int64, device=device)
    dist.broadcast(tensor, src=0)
    return [int(v) for v in tensor.tolist()]


def gather_objects(ctx: Distributed, value: object) -> list[object]:
    """Every rank's ``value``, in rank order (on every rank)."""
    if not ctx.enabled:
        return [value]
    out: list[object] = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(ctx: Distributed) -> None:
    if ctx.enabled:
        dist.barrier()
