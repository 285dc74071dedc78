"""The two exported graphs: ``EncoderGraph`` (per image) and
``DecoderGraph`` (per click), built from a ``ClickSegmentor``'s modules.

They run the model's own layers (the ViT layers, SimpleFPN, the I-MSA
blocks' norms, projections, depthwise convs and MLPs, PatchMerging,
UPerHead) on a private copy of the model, with the shape-dependent pieces
replaced by the exact tensor-shape versions of :mod:`.dynamic_ops`:

* ViT: the nearest-resized absolute pos-embed and relative-position bias
  index are computed from the token grid in the graph (the model caches
  them per Python size);
* I-MSA: the pyramid-pooled keys/values use the tensor-sized
  adaptive max pool (the model sizes the grids with Python ``round``);
* the click embedding is taken directly at stride 4: a bilinear
  (align_corners=False) resize by exactly 4 averages rows/columns 4i+1 and
  4i+2, so ``resize(table[ref])`` equals the per-code counts of those 2x2
  pixels times ``table / 4`` (same values to float rounding, without the
  (H, W, C) map the model builds);
* UPerHead's pyramid pooling uses the tensor-sized adaptive average pool.

Tensor layout of the interface (B = 1 for export, any H, W multiple of 32):

* encoder: ``image`` (B, 3, H, W) normalised RGB -> ``feat0..feat3``
  (B, C_i, H/s_i, W/s_i), s = 4, 8, 16, 32, and ``key0, value0 .. key3,
  value3`` (B, heads_i, N_i, head_dims_i), N_i the pooled tokens;
* decoder: ``feat0``, ``key0 .. value3`` and ``ref_label`` (B, 1, H, W)
  uint8 codes 0..4 -> ``logits`` (B, 2, H/4, W/4). The I-MSA neck reads
  the image only through ``feat0`` (stage input) and the cross-attention
  keys/values, so ``feat1..feat3`` are not decoder inputs.
"""
import copy
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import dynamic_ops as ops

__all__ = [
    'EncoderGraph', 'DecoderGraph', 'check_exportable', 'encoder_names',
    'decoder_input_names'
]

NUM_LEVELS = 4
NUM_CLS_TOKENS = 1


class ExportError(ValueError):
    """The model (or a part of it) cannot be exported to ONNX."""


def encoder_names() -> List[str]:
    """Output names of the encoder, in order."""
    names = [f'feat{i}' for i in range(NUM_LEVELS)]
    for i in range(NUM_LEVELS):
        names += [f'key{i}', f'value{i}']
    return names


def decoder_input_names() -> List[str]:
    """Input names of the decoder, in order."""
    names = ['feat0']
    for i in range(NUM_LEVELS):
        names += [f'key{i}', f'value{i}']
    return names + ['ref_label']


def check_exportable(model: nn.Module) -> None:
    """Raise :class:`ExportError` naming what is not supported."""
    from interformer.models.necks.imsa import IMSA
    from interformer.models.segmentors import ClickSegmentor
    kind = type(model).__name__
    if 'ZoomIn' in kind:
        raise ExportError(
            f'{kind}: the zoom-in refine (refine blocks on an ROI cropped '
            f'from the previous mask, sized per click) is not supported by '
            f'the ONNX export; export the ClickSegmentor of the same '
            f'checkpoint (type=ClickSegmentor) instead')
    if not isinstance(model, ClickSegmentor):
        raise ExportError(f'ONNX export needs a ClickSegmentor, got {kind}')
    if not isinstance(model.neck, IMSA):
        raise ExportError(f'ONNX export needs an IMSA neck, got '
                          f'{type(model.neck).__name__}')
    from mmseg.models.decode_heads import UPerHead
    if not isinstance(model.decode_head, UPerHead):
        raise ExportError(f'ONNX export supports a UPerHead decode head, '
                          f'got {type(model.decode_head).__name__}')
    backbone = type(model.backbone).__name__
    if backbone != 'MAEWithSimpleFPN':
        raise ExportError(f'ONNX export supports the MAEWithSimpleFPN '
                          f'backbone, got {backbone}')


def _plain_copy(module: nn.Module) -> nn.Module:
    """An eval-mode copy on the modules' own ops: a model deployed in place
    for the CPU fast path (``switch_to_deploy``) is exported from its plain
    PyTorch route."""
    from interformer.models.deploy import revert_deploy
    # the fused states (packed weights, locks) are not copied, only dropped
    memo = {}
    for part in module.modules():
        for name in ('_deploy_state', '_deploy_watch'):
            value = part.__dict__.get(name)
            if value is not None:
                memo[id(value)] = None
    module = copy.deepcopy(module, memo).eval()
    revert_deploy(module)
    return module


# ------------------------------------------------------------------- pieces
def pooled_key_value(attn: nn.Module, kv_map: Tensor) -> Tuple[Tensor,
                                                                Tensor]:
    """:meth:`PoolingAttention.key_value` with tensor-sized pooled grids.

    Args:
        attn: a ``PoolingAttention``.
        kv_map: (B, C, H, W) normalised key/value map.

    Returns:
        tuple[Tensor, Tensor]: K and V (B, heads, N, head_dims).
    """
    height, width = ops.dim_size(kv_map, 2), ops.dim_size(kv_map, 3)
    levels = []
    for ratio, dconv in zip(attn.pool_ratios, attn.dconvs):
        if ratio == 1:
            pooled = kv_map
        else:
            pooled = ops.adaptive_max_pool2d(
                kv_map,
                ops.pooled_grid_size(height, attn.target_grid[0], ratio),
                ops.pooled_grid_size(width, attn.target_grid[1], ratio))
        pooled = pooled + dconv(pooled)
        levels.append(pooled.flatten(2))
    tokens = attn.norm(torch.cat(levels, dim=2).transpose(1, 2))
    key, value = attn.key_value_proj(tokens).chunk(2, dim=-1)
    return attn._split_heads(key), attn._split_heads(value)


def run_block(block: nn.Module, x: Tensor, key_value=None) -> Tensor:
    """``PoolingBlock.forward`` (eval) with :func:`pooled_key_value`."""
    if key_value is None:
        key_value = pooled_key_value(block.attn, block.norm_kv(x))
    x = x + block.attn(block.norm1(x), key_value)
    return x + block.mlp(block.norm2(x))


class _AdaptiveAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(size)`` with :func:`ops.adaptive_avg_pool2d`."""

    def __init__(self, output_size) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(int(s) for s in output_size)

    def forward(self, x: Tensor) -> Tensor:
        out = [torch.tensor(s, dtype=torch.int64) for s in self.output_size]
        return ops.adaptive_avg_pool2d(x, *out)


def _grid_tokens(src_hw: Sequence[int], height: Tensor,
                 width: Tensor) -> Tensor:
    """(h*w,) source token of every token of an (h, w) grid (nearest)."""
    rows = ops.nearest_index(int(src_hw[0]), ops.as_size(height))
    cols = ops.nearest_index(int(src_hw[1]), ops.as_size(width))
    return (rows[:, None] * int(src_hw[1]) + cols[None, :]).reshape(-1)


# ------------------------------------------------------------------ graphs
class EncoderGraph(nn.Module):
    """Image -> pyramid maps and cross-attention keys/values.

    Args:
        model: a ``ClickSegmentor`` (the parts used are copied, then
            modified).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_exportable(model)
        self.backbone = _plain_copy(model.backbone)
        self.neck = _plain_copy(model.neck)
        backbone = self.backbone
        src_hw = tuple(int(s) for s in backbone.patch_shape)

        def pos_embed_for(hw_shape):
            tokens = _grid_tokens(src_hw, hw_shape[0], hw_shape[1])
            pos = backbone.pos_embed
            return torch.cat((pos[:, :NUM_CLS_TOKENS],
                              pos[:, NUM_CLS_TOKENS + tokens]), dim=1)

        backbone.pos_embed_for = pos_embed_for
        for layer in backbone.layers:
            layer.attn.rel_pos_bias = _rel_pos_bias_fn(layer.attn)

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> 4 maps + (K, V) per stage, see the module doc."""
        feats = list(self.backbone(image))
        outs = list(feats)
        for stage, feat in zip(self.neck.stages, feats):
            block = stage.blocks[0]
            outs.extend(pooled_key_value(block.attn, block.norm_kv(feat)))
        return tuple(outs)


def _rel_pos_bias_fn(attn: nn.Module):
    """``RelPosMAEAttention.rel_pos_bias`` from the traced token grid."""
    src_hw = tuple(int(s) for s in attn.window_size)

    def rel_pos_bias(hw_shape):
        tokens = _grid_tokens(src_hw, hw_shape[0], hw_shape[1])
        keep = torch.cat((tokens.new_zeros(NUM_CLS_TOKENS),
                          tokens + NUM_CLS_TOKENS))
        index = attn.relative_position_index.index_select(0, keep)
        index = index.index_select(1, keep)
        num = keep.shape[0]
        bias = attn.relative_position_bias_table.index_select(
            0, index.reshape(-1))
        return bias.reshape(num, num, -1).permute(2, 0, 1)

    return rel_pos_bias


class DecoderGraph(nn.Module):
    """feat0 + keys/values + reference label -> stride-4 logits.

    The stage loop is :meth:`IMSA.forward` without the ROI (zoom-in) branch
    and with the keys/values given; the head is the model's UPerHead.

    Args:
        model: a ``ClickSegmentor`` (the parts used are copied, then
            modified).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_exportable(model)
        self.neck = _plain_copy(model.neck)
        self.head = _plain_copy(model.decode_head)
        for ppm in self.head.psp_modules:
            ppm[0] = _AdaptiveAvgPool(ppm[0].output_size)
        # (5, C0) table / 4 as a 1x1 conv over the per-code counts
        table = self.neck.patch_embed.detach()
        self.register_buffer('embed_weight',
                             (table.t() * 0.25)[:, :, None, None].clone())
        self.num_codes = table.shape[0]

    def embed(self, ref_label: Tensor) -> Tensor:
        """(B, 1, H, W) codes -> (B, C0, H/4, W/4) click embedding."""
        codes = torch.arange(
            self.num_codes, dtype=torch.int64).reshape(1, -1, 1, 1)
        ref = ref_label.to(torch.int64)
        counts = None
        for dy in (1, 2):
            for dx in (1, 2):
                hit = (ref[:, :, dy::4, dx::4] == codes).to(torch.float32)
                counts = hit if counts is None else counts + hit
        return F.conv2d(counts, self.embed_weight)

    def forward(self, feat0: Tensor, *args: Tensor) -> Tensor:
        """``feat0, key0, value0, ..., key3, value3, ref_label`` ->
        (B, 2, H/4, W/4) logits."""
        key_values = [(args[2 * i], args[2 * i + 1])
                      for i in range(NUM_LEVELS)]
        ref_label = args[2 * NUM_LEVELS]
        neck = self.neck
        x = feat0 + self.embed(ref_label)
        outs = []
        for i in range(NUM_LEVELS):
            stage = neck.stages[i]
            x = run_block(stage.blocks[0], x, key_values[i])
            for block in stage.blocks[1:]:
                x = run_block(block, x)
            coarse = x
            if stage.downsample is not None:
                x = stage.downsample(coarse)
            for block in neck.refine_stages[i].blocks:
                coarse = run_block(block, coarse)
            outs.append(getattr(neck, f'norm{i}')(coarse))
        return self.head(outs)
