"""Registered runner hooks."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, atomic_write_text

__all__ = ['AtomicCheckpointHook', 'atomic_write_text']
