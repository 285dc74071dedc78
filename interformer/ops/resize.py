"""``interformer::bilinear_resize_``: bilinear resize into a destination.

C kernel ``csrc/bilinear.c``: resizes a channels-last map
(``align_corners=False``, PyTorch's sampling) straight into a possibly
strided channels-last destination (e.g. a channel slice of a wider map),
or adds to it, in one pass with float32 arithmetic and one rounding. The
PyTorch route resizes in float32 (its channels-last bilinear kernel is
faster in float32 than in bfloat16, conversions included), then copies or
adds.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatch import Support, check, declare, use_native
from .limits import channels_last_map, same_dtype

__all__ = ['resize', 'resize_reference']


def _limits(src: Tensor, dst: Tensor, accumulate: bool) -> Optional[str]:
    reason = channels_last_map('src', src, dense=False) or \
        channels_last_map('dst', dst, dense=False) or \
        same_dtype(('src', 'dst'), src, dst)
    if reason is None and src.shape[1] != dst.shape[1]:
        reason = (f'dst: {dst.shape[1]} channels, src has '
                  f'{src.shape[1]}')
    return reason


#: Outputs smaller than this many elements resize faster in PyTorch (the
#: custom op's fixed cost: 16 against 7 us for the pyramid-pool resizes to
#: 11x16x64, AMD EPYC, 2 threads).
MIN_OUTPUT_ELEMENTS = 16384


def _worthwhile(src: Tensor, dst: Tensor, accumulate: bool) -> Optional[str]:
    if dst.numel() < MIN_OUTPUT_ELEMENTS:
        return (f'{dst.numel()} output elements (< {MIN_OUTPUT_ELEMENTS}: '
                f'PyTorch is faster)')
    return None


SUPPORT = declare(
    'bilinear_resize',
    Support('bilinear_resize', (torch.float32, torch.bfloat16),
            limits=_limits, worthwhile=_worthwhile))


@torch.library.custom_op('interformer::bilinear_resize_',
                         mutates_args=('dst', ))
def _resize_op(src: Tensor, dst: Tensor, accumulate: bool) -> None:
    kernel = check('bilinear_resize', src, dst, accumulate)
    if kernel(src.data_ptr(), int(src.dtype == torch.bfloat16),
              src.shape[2], src.shape[3], src.shape[1], src.stride(2),
              src.stride(3), dst.data_ptr(), dst.shape[2], dst.shape[3],
              dst.stride(2), dst.stride(3), int(accumulate)) != 0:
        raise MemoryError('interformer::bilinear_resize_: the kernel could '
                          'not allocate its workspace')


@_resize_op.register_fake
def _(src, dst, accumulate):
    reason = _limits(src, dst, accumulate)
    if reason is not None:
        raise ValueError(f'interformer::bilinear_resize_: {reason}')


def resize_reference(x: Tensor,
                     size: Tuple[int, int],
                     out: Optional[Tensor] = None,
                     accumulate: bool = False,
                     align_corners: bool = False) -> Tensor:
    """The PyTorch route of :func:`resize`."""
    if tuple(x.shape[-2:]) == tuple(size):
        resized = x  # a resize to the same size is a copy
    else:
        resized = F.interpolate(
            x.float(), size=size, mode='bilinear',
            align_corners=align_corners)
    if out is None:
        return resized.to(x.dtype)
    if accumulate:
        return out.add_(resized.to(out.dtype))
    return out.copy_(resized)


def resize(x: Tensor,
           size: Tuple[int, int],
           out: Optional[Tensor] = None,
           accumulate: bool = False,
           align_corners: bool = False) -> Tensor:
    """Bilinear resize of a channels-last (1, C, h, w) map to ``size``.

    Args:
        x: the map, float32 or bfloat16.
        size: (H, W) of the result.
        out: (1, C, H, W) destination (a channels-last map or a channel
            slice of one), written or, with ``accumulate``, added to; None:
            a new channels-last map (``x`` itself if it has that size).
        align_corners: as ``F.interpolate`` (the kernel takes False only).

    Returns:
        Tensor: ``out`` (or the new map).
    """
    size = tuple(size)
    if out is None:
        if tuple(x.shape[-2:]) == size:
            return x  # nothing to resize
        out = torch.empty((1, x.shape[1]) + size, dtype=x.dtype,
                          memory_format=torch.channels_last)
        accumulate = False
    if not align_corners and tuple(x.shape[-2:]) != size and use_native(
            'bilinear_resize', x, out, accumulate):
        torch.ops.interformer.bilinear_resize_(x, out, accumulate)
        return out
    return resize_reference(x, size, out, accumulate, align_corners)
