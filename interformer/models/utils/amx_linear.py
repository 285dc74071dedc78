"""Small bfloat16 linear layers on AMX tiles (the C kernel ``linear.c``).

In the decoder, a oneDNN call for a projection or 1x1 convolution of a few
hundred tokens costs far more than its arithmetic (over 100 us against a
few us of AMX work). :class:`AmxLinear` packs the weight once into the tile
layout and runs ``act(x W^T + b) [+ residual]`` in one C call. It answers
``None`` where it does not apply (float32, no AMX-BF16, kernels suspended,
unsupported shapes); the caller then keeps its oneDNN route.
"""
from typing import Optional

import torch
from torch import Tensor

from .kernels import native

__all__ = ['AmxLinear']

_ACTIVATIONS = {'none': 0, 'hardswish': 1}
#: The kernel's tile sizes: input features per product, outputs per tile.
K_CHUNK, N_TILE, MAX_FEATURES = 32, 16, 1024


class AmxLinear:
    """``act(x W^T + b) [+ residual]`` for bf16 token rows.

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
        self._kernel = None
        if (dtype == torch.bfloat16 and act in _ACTIVATIONS
                and self.in_features % K_CHUNK == 0
                and self.out_features % N_TILE == 0
                and self.in_features <= MAX_FEATURES):
            self._kernel = native().load_linear_bf16()
        if self._kernel is None:
            return
        n, k = self.out_features, self.in_features
        # packed[kc][nb][r][l][e] = W[16 nb + l][32 kc + 2 r + e]
        self._packed = weight.to(torch.bfloat16).view(
            n // N_TILE, N_TILE, k // K_CHUNK, K_CHUNK // 2,
            2).permute(2, 0, 3, 1, 4).contiguous()
        self._bias = None if bias is None else \
            bias.detach().float().contiguous()
        self._act = _ACTIVATIONS[act]

    def __call__(self,
                 x: Tensor,
                 residual: Optional[Tensor] = None) -> Optional[Tensor]:
        """x: (..., K) bf16 rows (last dim contiguous); residual: the
        output's shape. Returns (..., N) bf16, or None (not applicable)."""
        if self._kernel is None or x.dtype != torch.bfloat16 or \
                not native().active():
            return None
        rows = x.reshape(-1, self.in_features)
        if rows.stride(1) != 1:
            return None
        out = torch.empty(rows.shape[0],
                          self.out_features,
                          dtype=torch.bfloat16)
        res = None
        if residual is not None:
            res = residual.reshape(-1, self.out_features)
            if res.dtype != torch.bfloat16 or res.stride(1) != 1:
                return None
        if self._kernel(rows.data_ptr(), rows.stride(0), rows.shape[0],
                        self.in_features, self._packed.data_ptr(),
                        self.out_features,
                        None if self._bias is None else self._bias.data_ptr(),
                        self._act, None if res is None else res.data_ptr(),
                        0 if res is None else res.stride(0), out.data_ptr(),
                        out.stride(0)) != 0:
            return None
        return out.view(*x.shape[:-1], self.out_features)
