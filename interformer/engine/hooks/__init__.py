"""Registered runner hooks."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, atomic_write_text
from .damaged_image_hook import DamagedImageSummaryHook
from .resume import find_resume_checkpoint, remove_stale_tmp_files

__all__ = [
    'AtomicCheckpointHook', 'DamagedImageSummaryHook', 'atomic_write_text',
    'find_resume_checkpoint', 'remove_stale_tmp_files'
]
