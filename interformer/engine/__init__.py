"""Training-engine additions to mmengine/mmseg: hooks and optimizer
wrappers."""
from .hooks import AtomicCheckpointHook, atomic_write_text
from .optimizers import CPUAmpOptimWrapper

__all__ = ['AtomicCheckpointHook', 'CPUAmpOptimWrapper', 'atomic_write_text']
