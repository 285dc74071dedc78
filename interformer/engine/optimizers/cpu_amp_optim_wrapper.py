"""Mixed precision on CPU (bfloat16 autocast).

mmengine's ``AmpOptimWrapper`` refuses to start without an accelerator.
``tools/train.py --amp`` uses it on GPUs and this wrapper on CPU, so the same
command line stays testable on a machine without CUDA. bfloat16 has the
exponent range of float32, so no loss scaling is needed.
"""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS
from torch import nn

__all__ = ['CPUAmpOptimWrapper']


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """:class:`~mmengine.optim.OptimWrapper` that autocasts on CPU.

    Args:
        dtype: autocast dtype, ``'bfloat16'`` (default) or ``'float32'``
            (autocast off, for debugging).
        **kwargs: the arguments of ``OptimWrapper``.
    """

    valid_dtypes = ('bfloat16', 'float32')

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype not in self.valid_dtypes:
            raise ValueError(f'CPUAmpOptimWrapper dtype must be one of '
                             f'{self.valid_dtypes}, got {dtype!r}')
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Gradient-accumulation context plus CPU autocast."""
        enabled = self.cast_dtype != torch.float32
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=self.cast_dtype, enabled=enabled):
            yield
