"""Data-parallel training with PyTorch's own engine: torchrun's env:// rendezvous, DDP, gloo/NCCL.

`torchrun --nproc_per_node=N -m sdet train CONFIG` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT for every process; a plain `sdet train` has none of them and runs as world size 1
with no process group. The training stream is defined in *global* batches (train.batch_size per
process x world size x train.grad_accum): rank r takes slice r of every global batch, so the data a
step sees does not depend on how it is split, and a run resumes under another world size at the
same stream position.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Dict, Iterable, List, Mapping, Sequence, TypeVar

import torch
import torch.distributed as dist

from sdet.errors import UserError

T = TypeVar("T")
RENDEZVOUS_KEYS = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, checkpoints and evaluations."""
        return self.rank == 0


def dist_info_from_env(environ: Mapping[str, str] = os.environ) -> DistInfo:
    """The process's place in the job, from torchrun's variables; world size 1 without them."""
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError(f"WORLD_SIZE must be an integer, got {environ['WORLD_SIZE']!r}", "<environment>") from None
    if world <= 1:
        return DistInfo()
    missing = [k for k in RENDEZVOUS_KEYS if not environ.get(k)]
    if missing:
        raise UserError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: no rendezvous to join; start distributed "
            "training with torchrun (--nproc_per_node=N, and --nnodes/--rdzv_endpoint for several machines)",
            "<environment>",
        )
    rank, local_rank = int(environ["RANK"]), int(environ["LOCAL_RANK"])
    if not 0 <= rank < world:
        raise UserError(f"RANK={rank} is outside WORLD_SIZE={world}", "<environment>")
    return DistInfo(rank, world, local_rank)


def init_process_group(info: DistInfo, device: torch.device, timeout_min: float = 30.0) -> None:
    """Join the job: NCCL between GPUs, gloo on CPU; env:// reads the rendezvous torchrun set up."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, init_method="env://", rank=info.rank, world_size=info.world_size,
                                timeout=timedelta(minutes=timeout_min))
    except (RuntimeError, ValueError) as exc:
        host = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise UserError(f"cannot join the process group at {host} ({str(exc).splitlines()[0][:200]})",
                        "<environment>") from None


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def local_slice(items: Sequence[T], info: DistInfo, part: int = 0, parts: int = 1) -> List[T]:
    """This rank's share of a global batch: slice (rank * parts + part) of world_size * parts equal slices."""
    n = info.world_size * parts
    if len(items) % n:
        raise ValueError(f"a global batch of {len(items)} does not split into {n} equal parts")
    size = len(items) // n
    start = (info.rank * parts + part) * size
    return list(items[start : start + size])


def average_gradients(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce the gradients of parameters outside the DDP module (a method's own optimiser)."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


def mean_over_ranks(values: Dict[str, float], info: DistInfo) -> Dict[str, float]:
    """Logged loss terms averaged over ranks (every rank must call it with the same keys)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision (e.g. 'stop: loss not finite') on every rank, so all leave the loop together."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
