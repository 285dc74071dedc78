"""``interformer::attention_bf16`` / ``interformer::attention_f32``: the
I-MSA blocks' softmax attention.

C kernel ``csrc/attention.c`` (CPUs with AVX512-BF16; AMX tiles where the
CPU also has AMX-BF16): per block of 16 queries, ``Q K^T`` (AMX tile
products, or ``vdpbf16ps`` with the query's dimension pairs broadcast), a
float32 softmax (masked keys 0, probabilities rounded to bf16), ``P V`` the
same way and the division by the sum; 32 dimensions per head, at most 1024
keys. ``csrc/attention_f32.c`` (AVX-512F) is the float32 counterpart:
keys packed transposed, FMAs on 4 queries x 16 keys, the same softmax,
float32 throughout. The PyTorch route is ``F.scaled_dot_product_attention``
with a key mask (its CPU flash kernel spends most of its time around the
tiny 32-dimension GEMMs). :func:`attention` picks the op by dtype.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .dispatch import Support, check, declare, use_native
from .limits import same_dtype

__all__ = ['attention', 'attention_reference', 'HEAD_DIMS', 'MAX_KEYS',
           'NATIVE_OPS']

HEAD_DIMS, MAX_KEYS = 32, 1024


def _limits(query: Tensor, key: Tensor, value: Tensor, num_keys: int,
            scale: float) -> Optional[str]:
    if query.dim() != 3 or query.shape[0] != 1 or query.shape[1] < 1:
        return f'query: expected (1, N, C), got {tuple(query.shape)}'
    if query.stride(2) != 1:
        return 'query: channels are not contiguous'
    for name, t in (('key', key), ('value', value)):
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[3] != HEAD_DIMS:
            return (f'{name}: expected (1, heads, M, {HEAD_DIMS}), got '
                    f'{tuple(t.shape)}')
        if not t.is_contiguous():
            return f'{name}: not contiguous'
    reason = same_dtype(('query', 'key', 'value'), query, key, value)
    if reason is not None:
        return reason
    if key.shape != value.shape:
        return f'value: {tuple(value.shape)}, key {tuple(key.shape)}'
    heads, keys = key.shape[1], key.shape[2]
    if query.shape[2] != heads * HEAD_DIMS:
        return (f'query: {query.shape[2]} channels, expected '
                f'{heads} heads x {HEAD_DIMS}')
    if query.stride(1) < query.shape[2]:
        return 'query: overlapping rows'
    if keys > MAX_KEYS:
        return f'{keys} keys (at most {MAX_KEYS})'
    if not 1 <= num_keys <= keys:
        return f'num_keys {num_keys} not in [1, {keys}]'
    if not scale > 0:
        return f'scale {scale} (must be > 0)'
    return None


declare('attention_bf16',
        Support('attention_bf16', (torch.bfloat16, ),
                cpu_features=('avx512_bf16', ),
                limits=_limits))
declare('attention_f32',
        Support('attention_f32', (torch.float32, ),
                cpu_features=('avx512f', ),
                limits=_limits))
#: The native op of each dtype.
NATIVE_OPS = {torch.bfloat16: 'attention_bf16', torch.float32: 'attention_f32'}


def _run_kernel(name: str, query: Tensor, key: Tensor, value: Tensor,
                num_keys: int, scale: float) -> Tensor:
    kernel = check(name, query, key, value, num_keys, scale)
    out = torch.empty(query.shape, dtype=query.dtype)
    if kernel(query.data_ptr(), query.stride(1), key.data_ptr(),
              value.data_ptr(), key.shape[1], query.shape[1], key.shape[2],
              num_keys, HEAD_DIMS, scale, out.data_ptr(),
              out.stride(1)) != 0:
        raise RuntimeError(f'interformer::{name}: the kernel declined (out '
                           'of memory)')
    return out


def _fake(name: str):
    def fake(query, key, value, num_keys, scale):
        reason = _limits(query, key, value, num_keys, scale)
        if reason is not None:
            raise ValueError(f'interformer::{name}: {reason}')
        return query.new_empty(query.shape)
    return fake


def _flops(query_shape, key_shape, value_shape, *args, out_shape=None,
           **kwargs) -> int:
    # Q K^T and P V: 2 FLOPs per multiply-add
    heads, keys = key_shape[1], key_shape[2]
    return 2 * 2 * heads * query_shape[1] * keys * HEAD_DIMS


@torch.library.custom_op('interformer::attention_bf16', mutates_args=())
def _attention_bf16_op(query: Tensor, key: Tensor, value: Tensor,
                       num_keys: int, scale: float) -> Tensor:
    return _run_kernel('attention_bf16', query, key, value, num_keys, scale)


@torch.library.custom_op('interformer::attention_f32', mutates_args=())
def _attention_f32_op(query: Tensor, key: Tensor, value: Tensor,
                      num_keys: int, scale: float) -> Tensor:
    return _run_kernel('attention_f32', query, key, value, num_keys, scale)


for _name, _op in (('attention_bf16', _attention_bf16_op),
                   ('attention_f32', _attention_f32_op)):
    _op.register_fake(_fake(_name))
    register_flop_formula(getattr(torch.ops.interformer, _name))(_flops)


def attention_reference(query: Tensor, key: Tensor, value: Tensor,
                        num_keys: int, scale: float) -> Tensor:
    """The PyTorch route: ``F.scaled_dot_product_attention``, keys past
    ``num_keys`` masked."""
    batch, queries, channels = query.shape
    heads, keys = key.shape[1], key.shape[2]
    mask = None
    if num_keys < keys:
        mask = (torch.arange(keys) < num_keys).view(1, 1, 1, -1)
    per_head = query.view(batch, queries, heads, -1).transpose(1, 2)
    out = F.scaled_dot_product_attention(per_head, key, value,
                                         attn_mask=mask, scale=scale)
    return out.transpose(1, 2).reshape(batch, queries, channels)


def attention(query: Tensor, key: Tensor, value: Tensor, num_keys: int,
              scale: float) -> Tensor:
    """Softmax attention of query tokens against pooled keys/values: the
    native op of the dtype (:data:`NATIVE_OPS`) where the dispatcher takes
    the call, else PyTorch's SDPA.

    Args:
        query: (1, N, heads * 32) tokens (channels contiguous).
        key, value: (1, heads, M, 32), contiguous, query's dtype.
        num_keys: the real keys (the first ``num_keys`` of M; the rest are
            padding, masked out).
        scale: the softmax scale (> 0).

    Returns:
        Tensor: (1, N, heads * 32) in query's dtype.
    """
    args = (query, key, value, int(num_keys), float(scale))
    name = NATIVE_OPS.get(query.dtype)
    if name is not None and use_native(name, *args):
        return getattr(torch.ops.interformer, name)(*args)
    return attention_reference(*args)

