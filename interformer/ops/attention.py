"""``interformer::attention_bf16``: the I-MSA blocks' bf16 softmax
attention.

C kernel ``csrc/attention.c`` (CPUs with AVX512-BF16; AMX tiles where the
CPU also has AMX-BF16): per block of 16 queries, ``Q K^T`` (AMX tile
products, or ``vdpbf16ps`` with the query's dimension pairs broadcast), a
float32 softmax (masked keys 0, probabilities rounded to bf16), ``P V`` the
same way and the division by the sum; 32 dimensions per head, at most 1024
keys. The PyTorch route is ``F.scaled_dot_product_attention`` with a key
mask (its CPU flash kernel spends most of its time around the tiny
32-dimension GEMMs).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .dispatch import Support, check, declare, use_native
from .limits import same_dtype

__all__ = ['attention_bf16', 'attention_reference', 'HEAD_DIMS',
           'MAX_KEYS']

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


SUPPORT = declare(
    'attention_bf16',
    Support('attention_bf16', (torch.bfloat16, ),
            cpu_features=('avx512_bf16', ),
            limits=_limits))


@torch.library.custom_op('interformer::attention_bf16', mutates_args=())
def _attention_op(query: Tensor, key: Tensor, value: Tensor, num_keys: int,
                  scale: float) -> Tensor:
    kernel = check('attention_bf16', query, key, value, num_keys, scale)
    out = torch.empty(query.shape, dtype=query.dtype)
    if kernel(query.data_ptr(), query.stride(1), key.data_ptr(),
              value.data_ptr(), key.shape[1], query.shape[1], key.shape[2],
              num_keys, HEAD_DIMS, scale, out.data_ptr(),
              out.stride(1)) != 0:
        raise RuntimeError('interformer::attention_bf16: the kernel '
                           'declined (out of memory)')
    return out


@_attention_op.register_fake
def _(query, key, value, num_keys, scale):
    reason = _limits(query, key, value, num_keys, scale)
    if reason is not None:
        raise ValueError(f'interformer::attention_bf16: {reason}')
    return query.new_empty(query.shape)


@register_flop_formula(torch.ops.interformer.attention_bf16)
def _flops(query_shape, key_shape, value_shape, *args, out_shape=None,
           **kwargs) -> int:
    # Q K^T and P V: 2 FLOPs per multiply-add
    heads, keys = key_shape[1], key_shape[2]
    return 2 * 2 * heads * query_shape[1] * keys * HEAD_DIMS


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


def attention_bf16(query: Tensor, key: Tensor, value: Tensor, num_keys: int,
                   scale: float) -> Tensor:
    """Softmax attention of query tokens against pooled keys/values.

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
    if use_native('attention_bf16', *args):
        return torch.ops.interformer.attention_bf16(*args)
    return attention_reference(*args)
