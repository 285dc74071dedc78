"""GroupNorm(1, C) on the fused routes' channels-last maps.

The I-MSA neck normalises every block's input twice and each stage's output
once with ``GroupNorm(1, C)``. :class:`FusedGroupNorm` runs the C kernel
(:mod:`.native`: two flat passes for the statistics, one for the affine)
where it is available, else PyTorch's ``F.group_norm`` with the float32
weights (its CPU kernel takes them with bfloat16 maps).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .fused_ops import channels_last, norm_params
from .kernels import native

__all__ = ['FusedGroupNorm']


class FusedGroupNorm:
    """``GroupNorm(1, C)`` keeping the input dtype and channels-last layout.

    Args:
        module: an ``nn.GroupNorm`` with one group.
        dtype: working dtype (float32 or bfloat16).
    """

    def __init__(self, module: nn.GroupNorm, dtype: torch.dtype) -> None:
        if getattr(module, 'num_groups', 1) != 1:
            raise NotImplementedError(f'fast path: GroupNorm with '
                                      f'{module.num_groups} groups')
        self.dtype = dtype
        self.params: Tuple[Optional[Tensor], Optional[Tensor],
                           float] = norm_params(module)
        self._native = native().load_group_norm() if dtype in (
            torch.float32, torch.bfloat16) else None

    def __call__(self, x: Tensor) -> Tensor:
        """x: channels-last (1, C, H, W) -> the same shape, dtype, layout."""
        if self._native is None or x.dtype != self.dtype or \
                x.shape[0] != 1 or not native().active():
            return F.group_norm(x, 1, *self.params)
        x = channels_last(x)
        out = torch.empty_like(x, memory_format=torch.channels_last)
        weight, bias, eps = self.params
        if self._native(x.data_ptr(), int(x.dtype == torch.bfloat16),
                        x.shape[2] * x.shape[3], x.shape[1],
                        None if weight is None else weight.data_ptr(),
                        None if bias is None else bias.data_ptr(), eps,
                        out.data_ptr()) != 0:
            return F.group_norm(x, 1, *self.params)  # too many channels
        return out
