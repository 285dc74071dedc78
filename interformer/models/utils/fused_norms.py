"""GroupNorm(1, C) on the fused routes' channels-last maps.

The I-MSA neck normalises every block's input twice and each stage's output
once with ``GroupNorm(1, C)``. :class:`FusedGroupNorm` runs PyTorch's
``F.group_norm`` with the float32 weights (its CPU kernel takes them with
bfloat16 maps and keeps the channels-last layout); a C kernel for it did
not beat this route by 1.15x (README, native kernels) and was dropped.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .fused_ops import norm_params

__all__ = ['FusedGroupNorm']


class FusedGroupNorm:
    """``GroupNorm(1, C)`` keeping the input dtype and channels-last layout.

    Args:
        module: an ``nn.GroupNorm`` with one group.
        dtype: working dtype (float32 or bfloat16).
    """

    def __init__(self, module: nn.GroupNorm, dtype: torch.dtype) -> None:
        if getattr(module, 'num_groups', 1) != 1:
            raise NotImplementedError(f'fused GroupNorm: GroupNorm with '
                                      f'{module.num_groups} groups')
        self.dtype = dtype
        self.params: Tuple[Optional[Tensor], Optional[Tensor],
                           float] = norm_params(module)

    def __call__(self, x: Tensor) -> Tensor:
        """x: channels-last (1, C, H, W) -> the same shape, dtype, layout."""
        return F.group_norm(x, 1, *self.params)
