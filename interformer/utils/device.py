"""Checking ``--device`` / ``--launcher`` before anything is built on them.
"""
import os

from .cli import UserError

__all__ = ['check_device', 'check_launcher']

#: The environment variable each launcher sets in every process.
_LAUNCHER_ENV = dict(
    pytorch='RANK', slurm='SLURM_PROCID', mpi='OMPI_COMM_WORLD_RANK')


def check_launcher(launcher: str, script: str = 'tools/dist_train.sh') -> str:
    """Return ``launcher`` if this process was started by it.

    Raises:
        UserError: ``--launcher pytorch`` / ``slurm`` in a process that
            torchrun / srun did not start.
    """
    var = _LAUNCHER_ENV.get(launcher)
    if var is not None and var not in os.environ:
        raise UserError(
            f'--launcher {launcher}: this process was not started by '
            f'{"srun" if launcher == "slurm" else "torchrun"} ({var} is not '
            f'set); use {script}, or drop --launcher for one process')
    return launcher


def check_device(device: str, flag: str = '--device') -> str:
    """Return ``device`` if this machine has it, else raise a UserError.

    Args:
        device: a torch device string (``cpu``, ``cuda``, ``cuda:1``...).
        flag: the argument's name for the message.

    Raises:
        UserError: the string is not a device, or names a CUDA device that
            this machine lacks.
    """
    import torch
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f'{flag} {device!r} is not a torch device '
                        f'(e.g. cpu, cuda, cuda:1): {err}') from None
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise UserError(f'{flag} {device}: CUDA is not available on '
                            'this machine (use --device cpu)')
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise UserError(f'{flag} {device}: this machine has {count} '
                            'CUDA device(s)')
    elif parsed.type not in ('cpu', 'meta') and not _available(parsed.type):
        raise UserError(f'{flag} {device}: no {parsed.type} backend on this '
                        'machine')
    return device


def _available(kind: str) -> bool:
    import torch
    module = getattr(torch, kind, None)
    is_available = getattr(module, 'is_available', None)
    try:
        return bool(is_available()) if callable(is_available) else False
    except Exception:
        return False
