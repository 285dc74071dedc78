"""The I-MSA neck on the fast path: same maths, fused oneDNN layers.

Built from an :class:`~interformer.models.necks.IMSA` (its weights are
copied once); every map is a channels-last (1, C, H, W) tensor, which is
also the (1, H*W, C) token layout the attention and linear layers use, so
switching between the two costs nothing. Per block:

* attention: GroupNorm -> query Linear -> softmax attention against the
  pooled keys/values (:mod:`.pooled_kv`) -> output Linear + residual;
* MLP: 1x1 conv + Hardswish, depthwise 3x3 + Hardswish, 1x1 conv fused
  with the residual (three calls instead of eight passes).

In bf16, where the dispatcher of :mod:`interformer.ops` takes them (CPUs
with AMX-BF16), the attention is ``interformer::attention_bf16`` and the
linear layers and 1x1 convs are ``interformer::linear_bf16`` (AMX tiles);
otherwise, and in float32, PyTorch's fused
``scaled_dot_product_attention`` (blocked, softmax statistics in float32,
the score matrix never stored) and oneDNN run them.

The keys/values of every stage's cross-attention block depend on the image
only; :meth:`FastIMSA.image_key_values` computes them once per image.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ... import ops as native_ops
from ...models.necks.imsa import IMSA, PatchMerging, PoolingBlock
from ...models.necks.imsa.zoom_in import normalize_rois, roi_to_window
from .amx_linear import AmxLinear
from .norms import FastGroupNorm
from .ops import (
    ConvParams,
    LinearParams,
    channels_last,
    conv,
    conv_add,
    linear,
    linear_add,
)
from .pooled_kv import PooledKeyValue, PyramidKeyValue

__all__ = [
    'FastIMSA', 'FastPoolingBlock', 'embed_reference_label', 'quad_table'
]

#: Scale of the stride-4 grid w.r.t. the reference label.
EMBED_STRIDE = 4


def as_tokens(x: Tensor) -> Tensor:
    """Channels-last (B, C, H, W) -> (B, H*W, C) view (no copy)."""
    batch, channels = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def as_map(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W, C) -> channels-last (B, C, H, W) view (no copy)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def quad_table(table: Tensor) -> Tensor:
    """Stride-4 click embeddings of every 2x2 tap combination.

    Row ``a + K*b + K^2*c + K^3*d`` (``K`` codes) holds
    ``((t[a] + t[b]) + (t[c] + t[d])) * 0.25``: the bilinear 4x reduction
    of taps (row 1, col 1), (1, 2), (2, 1), (2, 2) with the same operations
    in the same order, so a lookup equals the direct computation bit for
    bit.

    Args:
        table: (K, C) float32 embedding table.

    Returns:
        Tensor: (K^4, C) float32.
    """
    num_codes = table.shape[0]
    codes = torch.arange(num_codes**4)
    a, b, c, d = (codes // num_codes**i % num_codes for i in range(4))
    return ((table[a] + table[b]) + (table[c] + table[d])) * 0.25


def embed_reference_label(ref_label: Tensor,
                          table: Tensor,
                          size: Tuple[int, int],
                          quad: Optional[Tensor] = None) -> Tensor:
    """Click embedding at stride 4 without the full-resolution map.

    Equals ``F.interpolate(table[ref_label].permute(0, 3, 1, 2), size,
    'bilinear', align_corners=False)``: for an exact 4x reduction every
    output is the mean of the 2x2 input pixels at rows ``4i+1, 4i+2`` and
    columns ``4j+1, 4j+2`` (weights 0.5 each, exact in floating point), so
    only those four taps are read and their codes index one row of
    :func:`quad_table` (a single lookup). Other ratios take the general
    route on a 5-channel one-hot map.

    Args:
        ref_label: (B, H, W) integer codes.
        table: (num_codes, C) float32 embedding table.
        size: (h, w) of the output grid.
        quad: ``quad_table(table)``, precomputed (built here if None),
            possibly rounded to the working dtype.

    Returns:
        Tensor: channels-last (B, C, h, w), the dtype of ``quad`` on the
        stride-4 route, else float32.
    """
    batch, height, width = ref_label.shape
    out_h, out_w = size
    if height == EMBED_STRIDE * out_h and width == EMBED_STRIDE * out_w:
        if quad is None:
            quad = quad_table(table)
        num_codes = table.shape[0]
        index = ref_label[:, 1::4, 1::4].to(torch.int32)
        for i, (row, col) in enumerate(((1, 2), (2, 1), (2, 2)), start=1):
            index += ref_label[:, row::4, col::4].to(
                torch.int32) * num_codes**i
        emb = F.embedding(index, quad)
        return emb.permute(0, 3, 1, 2)  # (B, h, w, C) -> channels-last
    one_hot = F.one_hot(ref_label.long(), table.shape[0]).permute(0, 3, 1,
                                                                  2).float()
    weights = F.interpolate(
        one_hot, size=size, mode='bilinear', align_corners=False)
    emb = torch.einsum('bkhw,kc->bhwc', weights, table)
    return emb.permute(0, 3, 1, 2)


class FastPoolingBlock:
    """One :class:`PoolingBlock` (pre-norm attention + MLP), fused.

    Args:
        block: the source block (eval mode).
        dtype: working dtype (float32 or bfloat16).
    """

    def __init__(self, block: PoolingBlock, dtype: torch.dtype) -> None:
        attn = block.attn
        self.dtype = dtype
        self.embed_dims = attn.embed_dims
        self.num_heads = attn.num_heads
        self.head_dims = attn.head_dims
        self.scale = attn.scale
        self.norm1 = FastGroupNorm(block.norm1, dtype)
        self.norm_kv = FastGroupNorm(block.norm_kv, dtype)
        self.norm2 = FastGroupNorm(block.norm2, dtype)
        self.query = LinearParams.from_linear(attn.query_proj, dtype)
        self._key_value = PyramidKeyValue(attn, dtype)
        self.proj = LinearParams.from_linear(attn.proj, dtype)
        mlp = block.mlp
        self.mlp_in = ConvParams.from_conv(mlp[0], dtype, act='hardswish')
        self.mlp_dw = ConvParams.from_conv(mlp[2], dtype, act='hardswish')
        self.mlp_out = ConvParams.from_conv(mlp[4], dtype)
        # bf16 attention and small linear layers on AMX tiles where the
        # dispatcher takes them (float32 keeps SDPA and oneDNN)
        self._attention = dtype == torch.bfloat16
        self._amx_query = AmxLinear(attn.query_proj.weight,
                                    attn.query_proj.bias, dtype)
        self._amx_proj = AmxLinear(attn.proj.weight, attn.proj.bias, dtype)
        self._amx_mlp_in = AmxLinear(mlp[0].weight, mlp[0].bias, dtype,
                                     'hardswish')
        self._amx_mlp_out = AmxLinear(mlp[4].weight, mlp[4].bias, dtype)

    def key_value(self, kv: Tensor) -> PooledKeyValue:
        """Pooled K/V of a channels-last key/value map (not normalised)."""
        return self._key_value(kv, self.norm_kv.params)

    def __call__(self,
                 x: Tensor,
                 key_value: Optional[PooledKeyValue] = None) -> Tensor:
        """x: channels-last (1, C, H, W); ``key_value=None`` self-attends."""
        if key_value is None:
            key_value = self.key_value(x)
        batch, channels, height, width = x.shape
        tokens = as_tokens(self.norm1(x))
        query = self._amx_query(tokens)
        if query is None:
            query = linear(tokens, self.query)
        out = self._attend(query, key_value)
        residual = as_tokens(x)
        tokens = self._amx_proj(out, residual)
        if tokens is None:
            tokens = linear_add(out, residual, self.proj)
        x = as_map(tokens, height, width)
        normed = self.norm2(x)
        hidden = self._amx_mlp_in(as_tokens(normed))
        if hidden is None:
            hidden = conv(normed, self.mlp_in)
        else:
            hidden = as_map(hidden, height, width)
        hidden = conv(hidden, self.mlp_dw)
        out = self._amx_mlp_out(as_tokens(hidden), as_tokens(x))
        if out is None:
            return conv_add(hidden, x, self.mlp_out)
        return as_map(out, height, width)

    def _attend(self, query: Tensor, key_value: PooledKeyValue) -> Tensor:
        """Softmax attention of (1, N, C) query tokens -> (1, N, C)."""
        batch, num_queries, channels = query.shape
        args = (query, key_value.key, key_value.value, key_value.num_keys,
                self.scale)
        if self._attention and native_ops.use_native('attention_bf16',
                                                     *args):
            return torch.ops.interformer.attention_bf16(*args)
        # (1, N, C) -> (1, heads, N, d) view; the output comes back in the
        # (1, N, heads, d) memory order, so the token view costs nothing
        query = query.view(batch, -1, self.num_heads,
                           self.head_dims).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            query,
            key_value.key,
            key_value.value,
            attn_mask=key_value.mask,
            scale=self.scale)
        return out.transpose(1, 2).reshape(batch, -1, channels)


class FastPatchMerging:
    """PatchMerging (3x3 stride-2 unfold -> LayerNorm(9C) -> Linear) as
    one strided convolution plus per-pixel statistics.

    With ``u`` the 9C-vector of a 3x3 patch (zeros outside the map), mean
    ``m`` and standard deviation ``s``, LayerNorm weight ``g`` and bias
    ``b`` and the linear weight ``W``::

        W (g * (u - m) / s + b) = (conv(x, W*g) - m * rowsum(W*g)) / s + W b

    ``conv`` is a 3x3 stride-2 convolution whose weight is ``W*g``
    reshaped to (C_out, C, 3, 3) (the unfold order is channel-major, the
    conv weight order). ``m`` and ``s`` come from box means of the
    channel sums of ``x`` and ``x^2`` (float64 after the per-pixel sums).
    This never materialises the 9x wider unfolded map; the normalisation
    is two fused passes (``addcmul``) over the conv output, in float32.
    The conv runs in the working dtype: in bfloat16 its output rounding
    (relative 2^-9 of ``|conv(x, W*g)|``, which includes ``m * rowsum``)
    is of the same order as the rounding of ``x`` itself (2^-9 of
    ``|x|``, which includes ``m``), so the subtraction adds no error of a
    new order. Where the dispatcher takes it (:mod:`interformer.ops`), the
    statistics and the normalisation are one call on the conv output.
    """

    def __init__(self, module: PatchMerging, dtype: torch.dtype) -> None:
        if module.kernel_size % 2 != 1:
            raise NotImplementedError('fast PatchMerging: odd kernels only')
        self.dtype = dtype
        self.kernel_size = module.kernel_size
        self.stride = module.stride
        self.padding = module.padding
        self.eps = module.norm.eps
        weight = module.reduction.weight.detach().double()  # (C_out, 9C)
        gamma = module.norm.weight.detach().double()
        beta = module.norm.bias.detach().double()
        scaled = weight * gamma[None]
        k = self.kernel_size
        self.conv = ConvParams(
            weight=channels_last(
                scaled.view(-1, module.in_channels, k, k).to(dtype)),
            bias=None,
            stride=(self.stride, self.stride),
            padding=(self.padding, self.padding))
        self.row_sum = scaled.sum(1).float().view(1, -1, 1, 1)
        self.shift = (weight @ beta).float().view(1, -1, 1, 1)
        # False: always the PyTorch route
        self._native = True

    def __call__(self, x: Tensor) -> Tensor:
        """x: channels-last (1, C, H, W) -> channels-last (1, C_out, h, w)."""
        x = channels_last(x)
        # a fresh channels-last map, normalised in place by the kernel
        out = channels_last(conv(x, self.conv))
        args = (x, out, self.row_sum, self.shift, self.kernel_size,
                self.stride, self.padding, self.eps)
        if self._native and native_ops.use_native('patch_norm', *args):
            torch.ops.interformer.patch_norm_(*args)
            return out
        return native_ops.patch_norm_reference(*args)


class FastIMSA:
    """Fused copy of an :class:`IMSA` neck for batch-1 inference.

    Args:
        neck: the source neck (eval mode; its weights are copied).
        dtype: working dtype (float32 or bfloat16).
    """

    def __init__(self, neck: IMSA, dtype: torch.dtype) -> None:
        if not isinstance(neck, IMSA):
            raise NotImplementedError(f'fast path: unsupported neck '
                                      f'{type(neck).__name__}')
        self.dtype = dtype
        self.in_channels = tuple(neck.in_channels)
        self.num_ref_states = neck.num_ref_states
        self.cum_strides = neck.cum_strides
        self.table = neck.patch_embed.detach().float().clone()
        # rounded to the working dtype once: the lookup then equals the
        # float32 embedding rounded per click, without the conversion pass
        self.quad = quad_table(self.table).to(dtype)
        self.stages = []
        for stage in neck.stages:
            blocks = [FastPoolingBlock(b, dtype) for b in stage.blocks]
            down = None if stage.downsample is None else FastPatchMerging(
                stage.downsample, dtype)
            self.stages.append((blocks, down))
        self.refine = [[FastPoolingBlock(b, dtype) for b in stage.blocks]
                       for stage in neck.refine_stages]
        self.out_norms = [
            FastGroupNorm(getattr(neck, f'norm{i}'), dtype)
            for i in range(len(self.stages))
        ]

    def prepare_features(self, image_feats: Sequence[Tensor]) -> List[Tensor]:
        """Image features in the working dtype, channels-last."""
        if len(image_feats) != len(self.stages):
            raise ValueError(f'fast IMSA: expected {len(self.stages)} image '
                             f'features, got {len(image_feats)}')
        feats = []
        for i, feat in enumerate(image_feats):
            if feat.dim() != 4 or feat.shape[0] != 1 or \
                    feat.shape[1] != self.in_channels[i]:
                raise ValueError(f'fast IMSA: image feature {i} must be '
                                 f'(1, {self.in_channels[i]}, H, W), got '
                                 f'{tuple(feat.shape)}')
            feats.append(channels_last(feat.to(self.dtype)))
        return feats

    def image_key_values(
            self, feats: Sequence[Tensor]) -> List[PooledKeyValue]:
        """K/V of every stage's cross-attention block (once per image)."""
        return [
            blocks[0].key_value(feat)
            for (blocks, _), feat in zip(self.stages, feats)
        ]

    def __call__(self,
                 feats: Sequence[Tensor],
                 key_values: Sequence[PooledKeyValue],
                 ref_label: Tensor,
                 roi: Optional[Tensor] = None) -> List[Tensor]:
        """Neck outputs for one reference label.

        Args:
            feats: output of :meth:`prepare_features`.
            key_values: output of :meth:`image_key_values`.
            ref_label: (1, H, W) integer codes at input resolution.
            roi: optional (1, 4) box (left, up, right, bottom) in input
                pixels for the refine blocks (zoom-in).

        Returns:
            list[Tensor]: 4 channels-last maps, normalised.
        """
        first = feats[0]
        emb = embed_reference_label(ref_label, self.table,
                                    tuple(first.shape[-2:]), self.quad)
        x = first + emb.to(self.dtype)  # no-op on the stride-4 route
        outs = []
        for i, (blocks, down) in enumerate(self.stages):
            x = blocks[0](x, key_values[i])
            for block in blocks[1:]:
                x = block(x)
            coarse = x
            if down is not None:
                x = down(coarse)
            refined = self._refine(self.refine[i], coarse, roi,
                                   self.cum_strides[i])
            outs.append(self.out_norms[i](refined))
        return outs

    @staticmethod
    def _refine(blocks: list, x: Tensor, roi: Optional[Tensor],
                stride: int) -> Tensor:
        if not blocks:
            return x
        if roi is None:
            for block in blocks:
                x = block(x)
            return x
        height, width = x.shape[-2:]
        (box, ) = normalize_rois(roi, 1)
        left, up, right, bottom = roi_to_window(box, stride, height, width)
        crop = channels_last(x[:, :, up:bottom, left:right])
        for block in blocks:
            crop = block(crop)
        out = x.clone(memory_format=torch.channels_last)
        out[:, :, up:bottom, left:right] = crop
        return out

