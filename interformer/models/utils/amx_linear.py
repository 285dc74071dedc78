"""Small bfloat16 linear layers on AMX tiles (``interformer::linear_bf16``).

In the decoder, a oneDNN call for a projection or 1x1 convolution of a few
hundred tokens costs far more than its arithmetic (over 100 us against a
few us of AMX work). :class:`AmxLinear` packs the weight once into the tile
layout and runs ``act(x W^T + b) [+ residual]`` in one C call. It answers
``None`` where it does not apply (float32, no AMX-BF16, unsupported
shapes: :func:`interformer.ops.explain` says why); the caller then keeps
its oneDNN route.
"""
from typing import Optional

import torch
from torch import Tensor

from interformer import ops as native_ops
from interformer.ops.linear import ACTIVATIONS, pack_linear_weight

__all__ = ['AmxLinear']


class AmxLinear:
    """``act(x W^T + b) [+ residual]`` for bf16 token rows
    (``interformer::linear_bf16``).

    Args:
        weight: (N, K) or a 1x1 conv weight (N, K, 1, 1).
        bias: (N,) or None.
        dtype: working dtype; only bfloat16 uses the kernel.
        act: ``'none'`` or ``'hardswish'``.
    """

    def __init__(self,
                 weight: Tensor,
                 bias: Optional[Tensor],
                 dtype: torch.dtype,
                 act: str = 'none') -> None:
        weight = weight.detach().float().reshape(weight.shape[0], -1)
        self.out_features, self.in_features = weight.shape
        self._packed = None
        self._act = act
        self._bias = None if bias is None else \
            bias.detach().float().contiguous()
        if dtype == torch.bfloat16 and act in ACTIVATIONS:
            try:
                self._packed = pack_linear_weight(weight)
            except ValueError:  # not a multiple of the tiles
                self._packed = None

    def __call__(self,
                 x: Tensor,
                 residual: Optional[Tensor] = None) -> Optional[Tensor]:
        """x: (..., K) bf16 rows (last dim contiguous); residual: the
        output's shape. Returns (..., N) bf16, or None where the kernel
        does not take the call (the dispatcher says why)."""
        if self._packed is None or x.dtype != torch.bfloat16:
            return None
        rows = x.reshape(-1, self.in_features)
        res = None if residual is None else residual.reshape(
            -1, self.out_features)
        out = native_ops.linear_bf16(rows, self._packed, self._bias,
                                     self._act, res)
        return None if out is None else out.view(*x.shape[:-1],
                                                 self.out_features)
