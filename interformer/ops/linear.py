"""``interformer::linear_bf16``: small bf16 linear layers on AMX tiles.

C kernel ``csrc/linear.c`` (CPUs with AMX-BF16 only):
``act(x W^T + b) [+ residual]`` in 16-token x 64-output blocks with
float32 accumulation and one rounding to bf16, on a weight packed once into
the tile layout (:func:`pack_linear_weight`). The PyTorch route is a
float32-accumulated linear layer (oneDNN's bf16 GEMM).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .dispatch import Support, check, declare, use_native
from .limits import float_vector, rows_of

__all__ = ['linear_bf16', 'linear_reference', 'pack_linear_weight',
           'unpack_linear_weight', 'ACTIVATIONS', 'K_CHUNK', 'N_TILE',
           'MAX_FEATURES']

#: Activations the kernel fuses (name -> its code).
ACTIVATIONS = {'none': 0, 'hardswish': 1}
#: The kernel's tile sizes: input features per product, outputs per tile.
K_CHUNK, N_TILE, MAX_FEATURES = 32, 16, 1024


def pack_linear_weight(weight: Tensor) -> Tensor:
    """(N, K) weight -> the tile layout (K/32, N/16, 16, 16, 2) bf16:
    ``packed[kc][nb][r][l][e] = W[16 nb + l][32 kc + 2 r + e]``."""
    n, k = weight.shape
    if n % N_TILE or k % K_CHUNK:
        raise ValueError(f'pack_linear_weight: (N, K) = {(n, k)} must be '
                         f'multiples of ({N_TILE}, {K_CHUNK})')
    return weight.detach().to(torch.bfloat16).view(
        n // N_TILE, N_TILE, k // K_CHUNK, K_CHUNK // 2,
        2).permute(2, 0, 3, 1, 4).contiguous()


def unpack_linear_weight(packed: Tensor) -> Tensor:
    """The (N, K) weight of :func:`pack_linear_weight`'s layout."""
    kc, nb = packed.shape[:2]
    return packed.permute(1, 3, 0, 2, 4).reshape(nb * N_TILE, kc * K_CHUNK)


def _limits(x: Tensor, packed_weight: Tensor, bias: Optional[Tensor],
            act: int, residual: Optional[Tensor]) -> Optional[str]:
    if packed_weight.dim() != 5 or tuple(packed_weight.shape[2:]) != (
            K_CHUNK // 2, N_TILE, 2) or not packed_weight.is_contiguous():
        return (f'packed_weight: expected the (K/{K_CHUNK}, N/{N_TILE}, '
                f'{K_CHUNK // 2}, {N_TILE}, 2) tile layout, got '
                f'{tuple(packed_weight.shape)}')
    if packed_weight.dtype != torch.bfloat16:
        return 'packed_weight: not bfloat16'
    features = packed_weight.shape[0] * K_CHUNK
    outputs = packed_weight.shape[1] * N_TILE
    if features > MAX_FEATURES:
        return f'{features} input features (at most {MAX_FEATURES})'
    if act not in ACTIVATIONS.values():
        return f'act {act} (takes {sorted(ACTIVATIONS.values())})'
    reason = rows_of('x', x, features) or float_vector('bias', bias,
                                                      outputs)
    if reason is None and residual is not None:
        reason = rows_of('residual', residual, outputs)
        if reason is None and residual.dtype != torch.bfloat16:
            reason = 'residual: not bfloat16'
        if reason is None and residual.shape[0] != x.shape[0]:
            reason = (f'residual: {residual.shape[0]} rows, x has '
                      f'{x.shape[0]}')
    return reason


SUPPORT = declare(
    'linear_bf16',
    Support('linear_bf16', (torch.bfloat16, ),
            cpu_features=('amx_bf16', 'avx512_bf16'),
            limits=_limits))


@torch.library.custom_op('interformer::linear_bf16', mutates_args=())
def _linear_op(x: Tensor, packed_weight: Tensor, bias: Optional[Tensor],
               act: int, residual: Optional[Tensor]) -> Tensor:
    kernel = check('linear_bf16', x, packed_weight, bias, act, residual)
    rows, features = x.shape
    outputs = packed_weight.shape[1] * N_TILE
    out = torch.empty(rows, outputs, dtype=torch.bfloat16)
    if kernel(x.data_ptr(), x.stride(0), rows, features,
              packed_weight.data_ptr(), outputs,
              None if bias is None else bias.data_ptr(), act,
              None if residual is None else residual.data_ptr(),
              0 if residual is None else residual.stride(0), out.data_ptr(),
              out.stride(0)) != 0:
        raise RuntimeError('interformer::linear_bf16: the kernel declined '
                           '(AMX permission)')
    return out


@_linear_op.register_fake
def _(x, packed_weight, bias, act, residual):
    reason = _limits(x, packed_weight, bias, act, residual)
    if reason is not None:
        raise ValueError(f'interformer::linear_bf16: {reason}')
    return x.new_empty(x.shape[0], packed_weight.shape[1] * N_TILE)


@register_flop_formula(torch.ops.interformer.linear_bf16)
def _flops(x_shape, packed_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * x_shape[0] * x_shape[1] * packed_shape[1] * N_TILE


def linear_reference(x: Tensor, packed_weight: Tensor,
                     bias: Optional[Tensor], act: int,
                     residual: Optional[Tensor]) -> Tensor:
    """The PyTorch route (float32 accumulation, one rounding)."""
    out = F.linear(x.float(), unpack_linear_weight(packed_weight).float(),
                   bias)
    if act == ACTIVATIONS['hardswish']:
        out = F.hardswish(out)
    if residual is not None:
        out = out + residual.float()
    return out.to(x.dtype)


def linear_bf16(x: Tensor,
                packed_weight: Tensor,
                bias: Optional[Tensor] = None,
                act: str = 'none',
                residual: Optional[Tensor] = None) -> Optional[Tensor]:
    """``act(x W^T + b) [+ residual]`` on the AMX kernel, or None where
    the kernel does not take the call (the caller keeps its own route).

    Args:
        x: (M, K) bf16 rows (last dim contiguous).
        packed_weight: :func:`pack_linear_weight` of the (N, K) weight.
        bias: (N,) float32 or None.
        act: a key of :data:`ACTIVATIONS`.
        residual: (M, N) bf16 rows or None.
    """
    args = (x, packed_weight, bias, ACTIVATIONS.get(act, -1), residual)
    if use_native('linear_bf16', *args):
        return torch.ops.interformer.linear_bf16(*args)
    return None
