"""Registered runner hooks."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, atomic_write_text
from .resume import find_resume_checkpoint, remove_stale_tmp_files

__all__ = [
    'AtomicCheckpointHook', 'atomic_write_text', 'find_resume_checkpoint',
    'remove_stale_tmp_files'
]
