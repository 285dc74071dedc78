"""Training-engine additions to mmengine/mmseg: hooks and optimizer
wrappers."""
from .hooks import (
    AtomicCheckpointHook,
    DamagedImageSummaryHook,
    atomic_write_text,
    find_resume_checkpoint,
    remove_stale_tmp_files,
)
from .optimizers import CPUAmpOptimWrapper

__all__ = [
    'AtomicCheckpointHook', 'CPUAmpOptimWrapper', 'DamagedImageSummaryHook',
    'atomic_write_text',
    'find_resume_checkpoint', 'remove_stale_tmp_files'
]
