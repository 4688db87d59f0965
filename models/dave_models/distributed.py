"""Data-parallel training across processes (torchrun + DistributedDataParallel).

    torchrun --standalone --nproc_per_node=4 $(which dave) train steering --device cuda ...

torchrun starts one process per GPU and tells each its place through the environment (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT). Started without torchrun, a trainer runs as the only
process and nothing here changes its behaviour.

How the trainers use it: every process draws the same shuffled batch list from the same seed
and takes every world_size-th batch, so an epoch covers the data once across all processes and
every process runs the same number of steps (DDP all-reduces gradients each step; one process
with a step more would wait forever). `--batch-size` stays per process, as in PyTorch's own
examples. Only rank 0 validates, writes checkpoints, plots and logs; the others wait at a
barrier so no process runs ahead into the next epoch while rank 0 is still writing.

Backends: NCCL between CUDA devices, gloo on CPU (what the tests use: two CPU processes).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from dave_models.training import TrainingError

T = TypeVar('T')


class DistributedError(RuntimeError):
    """The torchrun environment is inconsistent with the requested device."""


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job; the single-process default is rank 0 of 1."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batches: Sequence[T]) -> list[T]:
        """This rank's batches: every world_size-th, cut to the same count on every rank."""
        per_rank = len(batches) // self.world_size
        return list(batches[self.rank::self.world_size][:per_rank])

    def device(self, name: str) -> torch.device:
        """The device this rank trains on: its own GPU under torchrun, else `name` as given."""
        if name == 'cuda' and self.enabled:
            return torch.device('cuda', self.local_rank)
        return torch.device(name)

    def wrap(self, model: torch.nn.Module, device: torch.device,
             find_unused_parameters: bool = False) -> torch.nn.Module:
        """The model as the training step should call it (DDP-wrapped when distributed).

        `find_unused_parameters`: set it when a step's loss may leave some parameters without
        a gradient (an optional head); DDP would otherwise wait for them forever.
        """
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [device.index] if device.type == 'cuda' else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The average of `value` over all ranks (e.g. the epoch's training loss)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)  # gloo reduces CPU tensors; NCCL would need them on the GPU
        return float(tensor.item()) / self.world_size


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f'environment {name}={value!r} is not an integer') from None


def init_distributed(device: str) -> DistributedContext:
    """Join the torchrun job described by the environment, or return the single-process context.

    NCCL for `device == 'cuda'` (each rank on GPU LOCAL_RANK), gloo for CPU training.
    """
    world_size = _env_int('WORLD_SIZE', 1)
    if world_size <= 1:
        return DistributedContext()
    context = DistributedContext(rank=_env_int('RANK', 0), world_size=world_size,
                                 local_rank=_env_int('LOCAL_RANK', 0))
    if device == 'cuda':
        if torch.cuda.device_count() <= context.local_rank:
            raise DistributedError(f'torchrun LOCAL_RANK {context.local_rank} needs GPU {context.local_rank}, '
                                   f'but torch sees {torch.cuda.device_count()} CUDA device(s)')
        torch.cuda.set_device(context.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend='nccl' if device == 'cuda' else 'gloo')
    return context


def shutdown_distributed(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def run_distributed(device: str, train: Callable[[DistributedContext], T]) -> T:
    """`train(context)` in this process's place of the torchrun job (or alone), then leave it.

    Checks that CUDA exists when asked for, and keeps every rank but 0 quiet (one process reports).
    """
    if device == 'cuda' and not torch.cuda.is_available():
        raise TrainingError('--device cuda: no CUDA device is available to torch')
    context = init_distributed(device)
    try:
        if not context.is_main:
            logging.getLogger('dave_models').setLevel(logging.WARNING)
        return train(context)
    finally:
        shutdown_distributed(context)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints store)."""
    return getattr(model, 'module', model)
