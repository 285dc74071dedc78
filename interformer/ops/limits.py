"""Small argument checks the ops' :class:`~.dispatch.Support` limits share.

Each returns None when the tensor is as the C kernel reads it, else a
reason in words. They read shapes, strides and dtypes only (never data),
so they also run on fake / meta tensors.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = ['channels_last_map', 'float_vector', 'same_dtype', 'rows_of']


def channels_last_map(name: str,
                      t: Tensor,
                      max_channels: Optional[int] = None,
                      dense: bool = True) -> Optional[str]:
    """``t`` is a (1, C, H, W) map with contiguous channels; ``dense``: the
    whole map is channels-last contiguous (else a channel slice of a wider
    channels-last map is fine)."""
    if not isinstance(t, Tensor):
        return f'{name}: expected a tensor, got {type(t).__name__}'
    if t.dim() != 4 or t.shape[0] != 1:
        return f'{name}: expected a (1, C, H, W) map, got {tuple(t.shape)}'
    if min(t.shape) < 1:
        return f'{name}: empty map {tuple(t.shape)}'
    if max_channels is not None and t.shape[1] > max_channels:
        return (f'{name}: {t.shape[1]} channels (at most {max_channels}, '
                f'MAX_CHANNELS)')
    if dense and not t.is_contiguous(memory_format=torch.channels_last):
        return f'{name}: not a channels-last contiguous map'
    if t.stride(1) != 1 and t.shape[1] > 1 or min(t.stride()) < 0:
        return f'{name}: channels are not contiguous'
    return None


def float_vector(name: str,
                 t: Optional[Tensor],
                 size: int,
                 optional: bool = True,
                 dtype: torch.dtype = torch.float32) -> Optional[str]:
    """``t`` is a contiguous ``dtype`` tensor of ``size`` elements (or None
    where ``optional``)."""
    if t is None:
        return None if optional else f'{name}: required'
    if not isinstance(t, Tensor):
        return f'{name}: expected a tensor, got {type(t).__name__}'
    if t.dtype != dtype:
        return (f'{name}: dtype {str(t.dtype).replace("torch.", "")} '
                f'(takes {str(dtype).replace("torch.", "")})')
    if t.numel() != size:
        return (f'{name}: {t.numel()} elements, expected {size} '
                f'(shape {tuple(t.shape)})')
    if not t.is_contiguous():
        return f'{name}: not contiguous'
    if t.device.type != 'cpu':
        return f'{name}: on {t.device}'
    return None


def same_dtype(names: Sequence[str], *tensors: Tensor) -> Optional[str]:
    """All given tensors (None skipped) share the first one's dtype."""
    first = tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t is not None and t.dtype != first.dtype:
            return (f'{name}: dtype {str(t.dtype).replace("torch.", "")}, '
                    f'expected {str(first.dtype).replace("torch.", "")}')
        if t is not None and t.device != first.device:
            return f'{name}: on {t.device}, expected {first.device}'
    return None


def rows_of(name: str, t: Tensor, columns: int) -> Optional[str]:
    """``t`` is an (M, columns) matrix with contiguous rows (M >= 1)."""
    if not isinstance(t, Tensor):
        return f'{name}: expected a tensor, got {type(t).__name__}'
    if t.dim() != 2 or t.shape[1] != columns or t.shape[0] < 1:
        return (f'{name}: expected (M, {columns}) rows, got '
                f'{tuple(t.shape)}')
    if t.stride(1) != 1 or t.stride(0) < columns:
        return f'{name}: rows are not contiguous'
    return None
