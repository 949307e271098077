"""Several processes: `torchrun --nproc-per-node N -m aurl train ...` and what ranks share.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/MASTER_PORT); `Dist.from_env`
joins the process group (NCCL on CUDA, gloo on CPU). Without those variables everything here is a
no-op for a single process. Rank 0 alone writes files; the others train their shard of each
global batch (`Batches(rank=, world_size=)`) and keep their gradients in step through DDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from aurl.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size, local rank, and whether it joined a group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    joined: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device_type: str) -> Dist:
        """Join the process group torchrun describes in the environment (or stay a single process).

        Raises:
            ConfigError: WORLD_SIZE or RANK is not an integer, or the rank lies outside the world.
        """
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise ConfigError(
                "RANK, WORLD_SIZE and LOCAL_RANK must be integers; launch with torchrun --nproc-per-node N"
            ) from None
        if world <= 1:
            return cls()
        if not 0 <= rank < world:
            raise ConfigError(f"RANK={rank} lies outside WORLD_SIZE={world}")
        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            if device_type == "cuda":
                torch.cuda.set_device(local)
            dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
        return cls(rank, world, local, True)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model in DistributedDataParallel when several processes train, else itself."""
        if not self.joined:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over all ranks, in place (itself when alone)."""
        if self.joined:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def average_grads(self, params: list[nn.Parameter]) -> None:
        """Average the gradients of parameters DDP does not synchronise (the discriminator's)."""
        if not self.joined:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world_size

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (JSON-able), in rank order."""
        if not self.joined:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.joined:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when `flag` is True on any rank (e.g. an interrupt seen by one process)."""
        if not self.joined:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        """Wait until every rank arrives."""
        if self.joined:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group."""
        if self.joined and dist.is_initialized():
            dist.destroy_process_group()
