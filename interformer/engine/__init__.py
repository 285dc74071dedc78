"""Training-engine additions to mmengine/mmseg: hooks and optimizer
wrappers."""
from .hooks import (
    AtomicCheckpointHook,
    atomic_write_text,
    find_resume_checkpoint,
    remove_stale_tmp_files,
)
from .optimizers import CPUAmpOptimWrapper

__all__ = [
    'AtomicCheckpointHook', 'CPUAmpOptimWrapper', 'atomic_write_text',
    'find_resume_checkpoint', 'remove_stale_tmp_files'
]
