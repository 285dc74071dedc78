"""Sharding the click test over processes and gathering the results.

Instances are dealt round-robin (rank r takes indices r, r + W, ...), each
process evaluates its share, and every process receives all results through
``torch.distributed.all_gather_object``. Results do not depend on the number
of processes because each instance draws its random numbers from its own
generator (see :func:`interformer.evaluation.click_test.instance_rng`).

The process group is always gloo: only Python objects are exchanged, the
model itself never takes part in a collective, so a GPU run needs no NCCL.
"""
import os
from typing import Any, List, Sequence, Tuple

import torch
import torch.distributed as dist

__all__ = [
    'LAUNCHERS', 'init_distributed', 'finalize_distributed', 'get_dist_info',
    'shard_indices', 'all_gather_objects', 'local_device'
]

LAUNCHERS = ('none', 'pytorch')


def init_distributed(launcher: str = 'none') -> Tuple[int, int]:
    """Join the process group torchrun describes (``launcher='pytorch'``).

    Args:
        launcher: ``'none'`` (single process) or ``'pytorch'`` (torchrun
            environment: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...).

    Returns:
        tuple[int, int]: (rank, world_size).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, '
                         f'got {launcher!r}')
    if launcher == 'pytorch' and not dist.is_initialized():
        if 'RANK' not in os.environ:
            raise RuntimeError("launcher='pytorch' needs the torchrun "
                               'environment (RANK, WORLD_SIZE, MASTER_ADDR); '
                               'start it with tools/dist_clicktest.sh')
        dist.init_process_group(backend='gloo')
    return get_dist_info()


def finalize_distributed() -> None:
    """Leave the process group cleanly once every rank is done.

    All ranks wait for each other (rank 0 may still be writing the report),
    then the group is destroyed. A process that exits with a live gloo
    group can be aborted at interpreter shutdown ("terminate called without
    an active exception", SIGABRT), which fails the whole torchrun job.
    Call it on the success path only: a rank that failed must not wait.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def get_dist_info() -> Tuple[int, int]:
    """(rank, world_size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(device: str) -> str:
    """``'cuda'`` -> ``'cuda:<LOCAL_RANK>'`` so each process has its GPU."""
    if device == 'cuda' and torch.cuda.is_available():
        return f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    return device


def shard_indices(indices: Sequence[int], rank: int,
                  world_size: int) -> List[int]:
    """The round-robin share of ``indices`` of process ``rank``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f'bad rank {rank} for world size {world_size}')
    return list(indices)[rank::world_size]


def all_gather_objects(obj: Any) -> List[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` when alone)."""
    rank, world_size = get_dist_info()
    if world_size == 1:
        return [obj]
    gathered: List[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered
