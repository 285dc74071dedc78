"""Pyramid-pooled keys/values of an I-MSA block on its fused route.

:meth:`PoolingAttention.key_value <interformer.models.necks.imsa.
PoolingAttention.key_value>` max-pools a key/value map to four small grids
(about 250 tokens in all), adds a depthwise 3x3 conv (+ residual) to each,
layer-norms the tokens and projects them to ``[K | V]``. On such small
grids a oneDNN depthwise call is mostly fixed cost (~40 us), so the four
levels share one grouped call on a canvas that stacks them along channels
(:class:`PyramidKeyValue`). K and V come out in the layout
``F.scaled_dot_product_attention`` reads, (1, heads, N, d) each.

Where the dispatcher takes it, the tokens (GroupNorm, pools, depthwise
convs + residuals, gather, LayerNorm) come from one call of the C kernel
``interformer::pyramid_tokens`` (:mod:`interformer.ops`) instead of about a
dozen operator calls; the PyTorch route below is the fallback.

For bfloat16 the key count is padded to a multiple of :data:`KV_PAD`: the
bf16 attention kernel is about 30 % faster on such counts (11264 queries x
251 keys: 1.33 -> 0.95 ms on 2 cores) and the padded keys (copies of the
first token) are masked out.
"""
import threading
from typing import Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from interformer import ops as native_ops
from interformer.ops.pyramid_tokens import MAX_CHANNELS, pyramid_tokens_args

from ...utils.amx_linear import AmxLinear
from ...utils.fused_ops import (
    ConvParams,
    LinearParams,
    channels_last,
    conv_add,
    linear,
    norm_params,
)

__all__ = ['PooledKeyValue', 'PyramidKeyValue', 'KV_PAD']

#: Key-count multiple per working dtype (no padding for float32: its kernel
#: gains nothing from it).
KV_PAD = {torch.bfloat16: 16}
#: Key/value map sizes whose canvas and token index are kept per block.
MAX_CACHED_GRIDS = 4


class PooledKeyValue(NamedTuple):
    """Keys and values for ``F.scaled_dot_product_attention``.

    Attributes:
        key: (1, heads, N, d) working dtype, contiguous.
        value: (1, heads, N, d) working dtype, contiguous.
        mask: (1, 1, 1, N) bool, False on padded keys; None without padding.
        num_keys: the real keys (the first ``num_keys`` of the N).
    """
    key: Tensor
    value: Tensor
    mask: Optional[Tensor]
    num_keys: int

    def as_pair(self, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        """(K, V) without the padded keys, in ``dtype``: the form
        :meth:`PoolingAttention.forward` takes (same attention result)."""
        return (self.key[:, :, :self.num_keys].to(dtype),
                self.value[:, :, :self.num_keys].to(dtype))


class _Grid(NamedTuple):
    """The pooled levels and token counts of one key/value map size."""
    sizes: Tuple[Tuple[int, int], ...]  # (h, w) per level
    flat_sizes: Tuple[int, ...]  # the same, flat (h0, w0, h1, ...)
    total: int  # tokens
    rows: int  # tokens + padding to a multiple of KV_PAD
    mask: Optional[Tensor]  # (1, 1, 1, rows) bool, None without padding


class _Layout(NamedTuple):
    """The PyTorch route's canvas for one key/value map size."""
    canvas: Tensor  # (1, levels*C, h_max, w_max) channels-last, zeros
    targets: Tuple[Tensor, ...]  # per level, its (1, C, h, w) canvas view
    index: Tensor  # (rows,) token rows of the conv output


class PyramidKeyValue:
    """The key/value side of one :class:`PoolingAttention`.

    The levels are pooled into one zero canvas, stacked along channels (the
    zeros around a smaller level are exactly the conv's zero padding), so
    the four depthwise convs + residuals are one grouped oneDNN call; a
    single ``index_select`` then reads the tokens in the reference order
    (level by level, row-major) plus, for padding, copies of the first
    token (masked out).

    Args:
        attn: the source attention module (eval mode).
        dtype: working dtype (float32 or bfloat16).
    """

    def __init__(self, attn, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.embed_dims = attn.embed_dims
        self.num_heads = attn.num_heads
        self.head_dims = attn.head_dims
        self.pooled_sizes = attn.pooled_sizes
        self.norm = norm_params(attn.norm)
        self.dconv = _stacked_depthwise(attn.dconvs, dtype)
        self.proj = LinearParams.from_linear(attn.key_value_proj, dtype)
        self._amx_proj = AmxLinear(attn.key_value_proj.weight,
                                   attn.key_value_proj.bias, dtype)
        self._native = _native_kernel(attn, dtype)
        if self._native:
            # float32 weights (not rounded to the working dtype)
            # (levels, 9, C): tap-major, as the kernel reads them
            self._dw_weight = torch.stack([
                c.weight.detach().float().reshape(self.embed_dims, 9).t()
                for c in attn.dconvs
            ]).contiguous()
            self._dw_bias = None if attn.dconvs[0].bias is None else \
                torch.cat([c.bias.detach().float()
                           for c in attn.dconvs]).contiguous()
        self._grids: Dict[Tuple[int, int], _Grid] = {}
        self._layouts: Dict[Tuple[int, int], _Layout] = {}
        # the canvases are reused: one caller at a time per block
        self._lock = threading.Lock()

    def _grid(self, height: int, width: int) -> _Grid:
        """Pooled sizes and padding of an (height, width) map, cached."""
        grid = self._grids.get((height, width))
        if grid is None:
            sizes = tuple((int(h), int(w))
                          for h, w in self.pooled_sizes(height, width))
            total = sum(h * w for h, w in sizes)
            multiple = KV_PAD.get(self.dtype, 1)
            rows = -(-total // multiple) * multiple
            mask = None if rows == total else torch.arange(rows).lt(
                total).view(1, 1, 1, -1)
            if len(self._grids) >= MAX_CACHED_GRIDS:
                self._grids.pop(next(iter(self._grids)))
            grid = self._grids[(height, width)] = _Grid(
                sizes, tuple(n for size in sizes for n in size), total, rows,
                mask)
        return grid

    def _layout(self, grid: _Grid, height: int, width: int) -> _Layout:
        """The canvas and token index for an (height, width) map, cached."""
        layout = self._layouts.get((height, width))
        if layout is not None:
            return layout
        levels = len(grid.sizes)
        max_h = max(h for h, _ in grid.sizes)
        max_w = max(w for _, w in grid.sizes)
        # a normal tensor even when built under inference mode, so that it
        # can be written to inside and outside inference mode
        with torch.inference_mode(False):
            canvas = channels_last(
                torch.zeros(1, levels * self.embed_dims, max_h, max_w,
                            dtype=self.dtype))
        # conv output row (y * max_w + x) * levels + level holds the token
        rows = []
        for level, (h, w) in enumerate(grid.sizes):
            y, x = torch.meshgrid(
                torch.arange(h), torch.arange(w), indexing='ij')
            rows.append(((y * max_w + x) * levels + level).reshape(-1))
        index = torch.cat(rows)
        if grid.rows != grid.total:  # padding: copies of the first token
            index = torch.cat(
                (index, index[:1].expand(grid.rows - grid.total)))
        if len(self._layouts) >= MAX_CACHED_GRIDS:
            self._layouts.pop(next(iter(self._layouts)))
        targets = tuple(
            canvas[:, level * self.embed_dims:(level + 1) * self.embed_dims,
                   :h, :w] for level, (h, w) in enumerate(grid.sizes))
        layout = self._layouts[(height, width)] = _Layout(
            canvas, targets, index)
        return layout

    def _torch_tokens(self, kv_map: Tensor, grid: _Grid, norm) -> Tensor:
        """Tokens (rows, C) from PyTorch ops."""
        if norm is not None:
            kv_map = F.group_norm(kv_map, 1, *norm)
        height, width = kv_map.shape[-2:]
        layout = self._layout(grid, height, width)
        channels = self.embed_dims
        canvas = layout.canvas
        with self._lock:
            for (h, w), target in zip(grid.sizes, layout.targets):
                target.copy_(kv_map if (h, w) == (height, width) else F.
                             adaptive_max_pool2d(kv_map, (h, w)))
            out = conv_add(canvas, canvas, self.dconv)  # channels-last
        tokens = out.permute(0, 2, 3, 1).reshape(-1, channels).index_select(
            0, layout.index)
        return F.layer_norm(tokens, (channels, ), *self.norm)

    def __call__(self,
                 kv_map: Tensor,
                 norm: Optional[tuple] = None) -> PooledKeyValue:
        """K/V of a channels-last (1, C, H, W) map.

        Args:
            kv_map: the key/value map, working dtype.
            norm: ``(weight, bias, eps)`` of the GroupNorm(1, C) to apply
                first (:func:`~.ops.norm_params`); None if ``kv_map`` is
                already normalised.
        """
        if kv_map.dim() != 4 or kv_map.shape[0] != 1 or \
                kv_map.shape[1] != self.embed_dims:
            raise ValueError(f'pyramid K/V: expected a (1, '
                             f'{self.embed_dims}, H, W) map, got '
                             f'{tuple(kv_map.shape)}')
        grid = self._grid(*kv_map.shape[-2:])
        args = pyramid_tokens_args(kv_map, norm, grid.flat_sizes,
                                   self._dw_weight, self._dw_bias, self.norm,
                                   grid.rows) if self._native else None
        if args is not None and native_ops.use_native(
                'pyramid_tokens', *args):
            tokens = torch.ops.interformer.pyramid_tokens(*args)
        else:
            tokens = self._torch_tokens(kv_map, grid, norm)
        key_value = self._amx_proj(tokens)
        if key_value is None:
            key_value = linear(tokens, self.proj)
        num_tokens = tokens.shape[0]
        qkv = key_value.new_empty(2, self.num_heads, num_tokens,
                                  self.head_dims)
        qkv.copy_(
            key_value.view(num_tokens, 2, self.num_heads,
                           self.head_dims).permute(1, 2, 0, 3))
        return PooledKeyValue(qkv[0][None], qkv[1][None], grid.mask,
                              grid.total)


def _native_kernel(attn, dtype: torch.dtype) -> bool:
    """True when the C kernel computes this block (3x3 depthwise convs
    with padding 1 and stride 1, an affine LayerNorm, at most
    :data:`~interformer.ops.MAX_CHANNELS` channels; the dispatcher checks
    the rest per call)."""
    if dtype not in (torch.float32, torch.bfloat16) or \
            attn.embed_dims > MAX_CHANNELS:
        return False
    if attn.norm.weight is None or attn.norm.bias is None:
        return False
    for dconv in attn.dconvs:
        if (tuple(dconv.kernel_size) != (3, 3) or tuple(dconv.stride) !=
                (1, 1) or tuple(dconv.padding) != (1, 1) or
                tuple(dconv.dilation) != (1, 1) or
                dconv.groups != attn.embed_dims or
                dconv.padding_mode != 'zeros'):
            return False
    return True


def _stacked_depthwise(dconvs, dtype: torch.dtype) -> ConvParams:
    """One grouped conv equal to the per-level depthwise convs stacked
    along channels (same kernel, stride and padding at every level)."""
    first = ConvParams.from_conv(dconvs[0], dtype)
    weight = torch.cat([c.weight.detach().float() for c in dconvs])
    bias = None
    if first.bias is not None:
        bias = torch.cat([c.bias.detach().float() for c in dconvs]).to(dtype)
    return ConvParams(
        weight=channels_last(weight.to(dtype)),
        bias=bias,
        stride=first.stride,
        padding=first.padding,
        dilation=first.dilation,
        groups=weight.shape[0])
