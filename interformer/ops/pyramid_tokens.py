"""``interformer::pyramid_tokens``: the pooled key/value tokens of an I-MSA
block in one call.

PoolingAttention's key/value side is GroupNorm(1, C) (optional), an
adaptive max pool per pyramid level, a depthwise 3x3 conv (padding 1) +
bias + residual per level, the tokens of all levels in order (level by
level, row-major) and a LayerNorm over channels: about a dozen small
operator calls in PyTorch. C kernel ``csrc/pyramid_tokens.c`` does them in
one pass over the map.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from .dispatch import Support, check, declare, use_native
from .limits import channels_last_map, float_vector

__all__ = [
    'pyramid_tokens', 'pyramid_tokens_args', 'pyramid_tokens_reference',
    'MAX_CHANNELS'
]

#: Widest map the kernel takes (its per-channel workspaces are on the stack).
MAX_CHANNELS = 1024


def _limits(x: Tensor, gn_weight: Optional[Tensor],
            gn_bias: Optional[Tensor], gn_eps: float, apply_gn: bool,
            sizes: Sequence[int], dw_weight: Tensor,
            dw_bias: Optional[Tensor], ln_weight: Tensor, ln_bias: Tensor,
            ln_eps: float, rows: int) -> Optional[str]:
    reason = channels_last_map('x', x, MAX_CHANNELS)
    if reason is not None:
        return reason
    channels = x.shape[1]
    if len(sizes) < 2 or len(sizes) % 2 or min(sizes) < 1:
        return f'sizes: expected (h, w) pairs >= 1, got {list(sizes)}'
    levels = len(sizes) // 2
    total = sum(h * w for h, w in zip(sizes[::2], sizes[1::2]))
    if rows < total:
        return f'rows: {rows} < {total} tokens'
    return float_vector('gn_weight', gn_weight, channels) or \
        float_vector('gn_bias', gn_bias, channels) or \
        float_vector('dw_weight', dw_weight, levels * 9 * channels,
                     optional=False) or \
        float_vector('dw_bias', dw_bias, levels * channels) or \
        float_vector('ln_weight', ln_weight, channels, optional=False) or \
        float_vector('ln_bias', ln_bias, channels, optional=False)


SUPPORT = declare(
    'pyramid_tokens',
    Support('pyramid_tokens', (torch.float32, torch.bfloat16),
            limits=_limits))


@torch.library.custom_op('interformer::pyramid_tokens', mutates_args=())
def _tokens_op(x: Tensor, gn_weight: Optional[Tensor],
               gn_bias: Optional[Tensor], gn_eps: float, apply_gn: bool,
               sizes: Sequence[int], dw_weight: Tensor,
               dw_bias: Optional[Tensor], ln_weight: Tensor, ln_bias: Tensor,
               ln_eps: float, rows: int) -> Tensor:
    kernel = check('pyramid_tokens', x, gn_weight, gn_bias, gn_eps,
                   apply_gn, sizes, dw_weight, dw_bias, ln_weight, ln_bias,
                   ln_eps, rows)
    channels, height, width = x.shape[1:]
    total = sum(h * w for h, w in zip(sizes[::2], sizes[1::2]))
    sizes_int32 = torch.tensor(list(sizes), dtype=torch.int32)
    scratch = torch.empty(2 * total * channels, dtype=torch.float32)
    out = torch.empty(rows, channels, dtype=x.dtype)

    def pointer(t):
        return None if t is None else t.data_ptr()

    if kernel(x.data_ptr(), int(x.dtype == torch.bfloat16), height, width,
              channels, int(apply_gn), pointer(gn_weight), pointer(gn_bias),
              gn_eps, len(sizes) // 2, sizes_int32.data_ptr(),
              dw_weight.data_ptr(), pointer(dw_bias), ln_weight.data_ptr(),
              ln_bias.data_ptr(), ln_eps, scratch.data_ptr(), out.data_ptr(),
              rows) != 0:
        raise RuntimeError('interformer::pyramid_tokens: the kernel declined')
    return out


@_tokens_op.register_fake
def _(x, gn_weight, gn_bias, gn_eps, apply_gn, sizes, dw_weight, dw_bias,
      ln_weight, ln_bias, ln_eps, rows):
    reason = _limits(x, gn_weight, gn_bias, gn_eps, apply_gn, sizes,
                     dw_weight, dw_bias, ln_weight, ln_bias, ln_eps, rows)
    if reason is not None:
        raise ValueError(f'interformer::pyramid_tokens: {reason}')
    return x.new_empty(rows, x.shape[1])


@register_flop_formula(torch.ops.interformer.pyramid_tokens)
def _flops(x_shape, gn_weight, gn_bias, gn_eps, apply_gn, sizes, *args,
           out_shape=None, **kwargs) -> int:
    # the depthwise 3x3 convs (a multiply-add = 2 FLOPs; the pools and
    # norms are element-wise work, which torch's counter does not count)
    total = sum(h * w for h, w in zip(sizes[::2], sizes[1::2]))
    return 2 * 9 * total * x_shape[1]


def pyramid_tokens_reference(x: Tensor, gn_weight: Optional[Tensor],
                             gn_bias: Optional[Tensor], gn_eps: float,
                             apply_gn: bool, sizes: Sequence[int],
                             dw_weight: Tensor, dw_bias: Optional[Tensor],
                             ln_weight: Tensor, ln_bias: Tensor,
                             ln_eps: float, rows: int) -> Tensor:
    """The PyTorch route of :func:`pyramid_tokens` (float32 arithmetic)."""
    channels = x.shape[1]
    levels = len(sizes) // 2
    x32 = x.float()
    if apply_gn:
        x32 = F.group_norm(x32, 1, gn_weight, gn_bias, gn_eps)
    weight = dw_weight.view(levels, 9, channels).permute(0, 2, 1).reshape(
        levels, channels, 1, 3, 3)
    bias = None if dw_bias is None else dw_bias.view(levels, channels)
    tokens = []
    for level, (h, w) in enumerate(zip(sizes[::2], sizes[1::2])):
        pooled = F.adaptive_max_pool2d(x32, (h, w))
        mixed = pooled + F.conv2d(
            pooled, weight[level], None if bias is None else bias[level],
            padding=1, groups=channels)
        tokens.append(mixed.flatten(2).transpose(1, 2).reshape(-1, channels))
    tokens = torch.cat(tokens)
    if rows > tokens.shape[0]:  # padding: copies of the first token
        tokens = torch.cat(
            (tokens, tokens[:1].expand(rows - tokens.shape[0], -1)))
    return F.layer_norm(tokens, (channels, ), ln_weight, ln_bias,
                        ln_eps).to(x.dtype)


def pyramid_tokens_args(x: Tensor, gn: Optional[tuple],
                        sizes: Sequence[int], dw_weight: Tensor,
                        dw_bias: Optional[Tensor], ln: tuple,
                        rows: int) -> tuple:
    """The arguments of ``torch.ops.interformer.pyramid_tokens`` (and of
    :func:`~.dispatch.use_native`) for those of :func:`pyramid_tokens`."""
    gn_weight, gn_bias, gn_eps = gn if gn is not None else (None, None, 0.)
    return (x, gn_weight, gn_bias, float(gn_eps), gn is not None,
            [int(s) for s in sizes], dw_weight, dw_bias, ln[0], ln[1],
            float(ln[2]), int(rows))


def pyramid_tokens(x: Tensor,
                   gn: Optional[tuple],
                   sizes: Sequence[int],
                   dw_weight: Tensor,
                   dw_bias: Optional[Tensor],
                   ln: tuple,
                   rows: int) -> Tensor:
    """Pooled, mixed and normalised tokens of a key/value map.

    Args:
        x: (1, C, H, W) channels-last map, float32 or bfloat16.
        gn: ``(weight, bias, eps)`` of a GroupNorm(1, C) applied first
            (float32 (C,) or None each), or None.
        sizes: flat pooled sizes ``(h0, w0, h1, w1, ...)``.
        dw_weight: (levels, 9, C) float32 depthwise 3x3 weights, tap-major
            (tap ky * 3 + kx); dw_bias: (levels, C) float32 or None.
        ln: ``(weight, bias, eps)`` of the LayerNorm (float32 (C,)).
        rows: output rows (>= the token count; the rows past it are copies
            of token 0, padding a caller masks out).

    Returns:
        Tensor: (rows, C) tokens in x's dtype.
    """
    args = pyramid_tokens_args(x, gn, sizes, dw_weight, dw_bias, ln, rows)
    if use_native('pyramid_tokens', *args):
        return torch.ops.interformer.pyramid_tokens(*args)
    return pyramid_tokens_reference(*args)
