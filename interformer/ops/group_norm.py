"""``interformer::group_norm``: GroupNorm(1, C) of a channels-last map.

C kernel ``csrc/norms.c``: two flat passes for the statistics (the mean,
then squared deviations from it: more precise than PyTorch's float32
kernel on maps with a large common offset) and one pass applying the
per-channel affine, with one rounding to the map's dtype. The PyTorch
route is ``F.group_norm`` with the float32 weights (its CPU kernel takes
them with bfloat16 maps).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatch import Support, check, declare, use_native
from .limits import channels_last_map, float_vector

__all__ = ['group_norm', 'group_norm_reference', 'MAX_NORM_CHANNELS']

#: Widest map norms.c takes (its per-channel workspace is on the stack).
MAX_NORM_CHANNELS = 4096


def _limits(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
            eps: float) -> Optional[str]:
    reason = channels_last_map('x', x, MAX_NORM_CHANNELS)
    if reason is None:
        channels = x.shape[1]
        reason = float_vector('weight', weight, channels) or \
            float_vector('bias', bias, channels)
    return reason


SUPPORT = declare(
    'group_norm',
    Support('group_norm', (torch.float32, torch.bfloat16), limits=_limits))


@torch.library.custom_op('interformer::group_norm', mutates_args=())
def _group_norm_op(x: Tensor, weight: Optional[Tensor],
                   bias: Optional[Tensor], eps: float) -> Tensor:
    kernel = check('group_norm', x, weight, bias, eps)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    if kernel(x.data_ptr(), int(x.dtype == torch.bfloat16),
              x.shape[2] * x.shape[3], x.shape[1],
              None if weight is None else weight.data_ptr(),
              None if bias is None else bias.data_ptr(), eps,
              out.data_ptr()) != 0:
        raise RuntimeError('interformer::group_norm: the kernel declined')
    return out


@_group_norm_op.register_fake
def _(x, weight, bias, eps):
    reason = _limits(x, weight, bias, eps)
    if reason is not None:
        raise ValueError(f'interformer::group_norm: {reason}')
    return torch.empty_like(x, memory_format=torch.channels_last)


def group_norm_reference(x: Tensor, weight: Optional[Tensor],
                         bias: Optional[Tensor], eps: float) -> Tensor:
    """The PyTorch route: ``F.group_norm(x, 1, weight, bias, eps)``."""
    return F.group_norm(x, 1, weight, bias, eps)


def group_norm(x: Tensor,
               weight: Optional[Tensor],
               bias: Optional[Tensor],
               eps: float = 1e-5) -> Tensor:
    """GroupNorm(1, C) keeping the dtype and channels-last layout.

    Args:
        x: (1, C, H, W) channels-last map, float32 or bfloat16.
        weight, bias: (C,) float32 affine, or None.
        eps: the GroupNorm epsilon.

    Returns:
        Tensor: (1, C, H, W), x's dtype, channels-last.
    """
    if use_native('group_norm', x, weight, bias, eps):
        return torch.ops.interformer.group_norm(x, weight, bias, eps)
    return group_norm_reference(x, weight, bias, eps)
