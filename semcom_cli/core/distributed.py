"""Running under ``torchrun`` / ``accelerate launch``: which share of the work is this process's.

Both launchers set ``RANK`` and ``WORLD_SIZE``; with more than one process a gloo
process group (CPU-friendly) is started on first use. Work is dealt round-robin
in fixed units (an evaluation's LLM batches), so each unit is computed exactly
as a single process would compute it, and the merged result is the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist

__all__ = ["Shard", "current_shard"]


@dataclass(frozen=True)
class Shard:
    rank: int
    world: int

    @classmethod
    def single(cls) -> "Shard":
        return cls(0, 1)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def take(self, units: list) -> list:
        """This process's units: every world-th, starting at its rank."""
        return units[self.rank :: self.world]

    def merge(self, values: list) -> list:
        """Combine per-process lists where each position was filled (not None) by one process."""
        if self.world == 1:
            return values
        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, values)
        return [next((g[i] for g in gathered if g[i] is not None), None) for i in range(len(values))]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def current_shard() -> Shard:
    """The shard the launcher gave this process (a single shard when run plainly)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard.single()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Shard(dist.get_rank(), dist.get_world_size())
