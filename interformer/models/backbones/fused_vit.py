"""The fused route of :class:`~interformer.models.backbones.MAEWithSimpleFPN`.

Same computation as the backbone in eval mode, with every Linear layer a
oneDNN call: qkv, the output projection fused with the layer scale and the
residual, the first FFN layer fused with its (erf) GELU, the second fused
with the layer scale and the residual; attention in float32 scores
(:func:`~interformer.models.utils.fused_ops.attention`). The
relative-position bias for the input's token grid comes from each layer's
own per-grid cache (float32) when it fits the cache's memory budget; for
larger grids it is gathered from the bias table block by block inside the
attention (:class:`~interformer.models.utils.fused_ops.GatheredBias`), so
no (heads, N, N) matrix is built at all.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..utils.deployable import DeployRefused
from ..utils.fused_ops import (
    ConvParams,
    GatheredBias,
    LinearParams,
    attention,
    attention_keys,
    channels_last,
    conv,
    conv_transpose,
    linear,
    linear_add,
)
from .flexible_pos import resize_rel_pos_index

__all__ = [
    'FusedViTLayer', 'fused_fpn_branch', 'run_fused_branch', 'LayerBiases'
]


class FusedViTLayer:
    """A ``RelPosMAELayer`` (pre-norm ViT block with layer scale) prepared
    for its fused route; built by :meth:`MAEWithSimpleFPN.switch_to_deploy
    <interformer.models.backbones.MAEWithSimpleFPN.switch_to_deploy>`."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype) -> None:
        attn = layer.attn
        self.num_heads = attn.num_heads
        self.scale = attn.scale
        self.ln1 = (layer.ln1.weight.detach().float(),
                    layer.ln1.bias.detach().float(), layer.ln1.eps)
        self.ln2 = (layer.ln2.weight.detach().float(),
                    layer.ln2.bias.detach().float(), layer.ln2.eps)
        self.qkv = LinearParams.from_linear(attn.qkv, dtype)
        self.proj = LinearParams.from_linear(
            attn.proj, dtype, out_scale=layer.gamma_1)
        fc1, act = layer.ffn.layers[0][0], layer.ffn.layers[0][1]
        fc2 = layer.ffn.layers[1]
        if not isinstance(act, nn.GELU) or act.approximate != 'none':
            raise DeployRefused(f'MAE layer: FFN activation '
                                      f'{act!r}')
        self.fc1 = LinearParams.from_linear(fc1, dtype, act='gelu')
        self.fc2 = LinearParams.from_linear(
            fc2, dtype, out_scale=layer.gamma_2)
        # once per image and large: a pre-packed copy per token count
        # would cost memory (GBs for ViT-L) for no measurable gain
        for params in (self.qkv, self.proj, self.fc1, self.fc2):
            params.packed = None

    def __call__(self, x: Tensor, bias: Tensor) -> Tensor:
        """x (1, N, D) tokens; bias (heads, N, N) -> (1, N, D)."""
        batch, num_tokens, dims = x.shape
        hidden = F.layer_norm(x, (dims, ), *self.ln1)
        qkv = linear(hidden, self.qkv)[0].view(num_tokens, 3, self.num_heads,
                                               -1)
        query, key, value = qkv.permute(1, 2, 0, 3).unbind(0)
        out = attention(query, *attention_keys(key, value, self.scale),
                        bias).view(batch, num_tokens, dims)
        x = linear_add(out, x, self.proj)
        hidden = linear(F.layer_norm(x, (dims, ), *self.ln2), self.fc1)
        return linear_add(hidden, x, self.fc2)


def fused_fpn_branch(branch: nn.Sequential, dtype: torch.dtype) -> list:
    """A SimpleFPN branch as a list of (kind, params) steps."""
    steps = []
    for module in branch:
        if isinstance(module, nn.ConvTranspose2d):
            if tuple(module.output_padding) != (0, 0):
                raise DeployRefused('SimpleFPN: output_padding')
            params = ConvParams(
                weight=channels_last(module.weight.detach().float().to(dtype)),
                bias=None
                if module.bias is None else module.bias.detach().to(dtype),
                stride=tuple(module.stride),
                padding=tuple(module.padding),
                dilation=tuple(module.dilation),
                groups=module.groups)
            steps.append(('conv_transpose', params))
        elif isinstance(module, nn.Conv2d):
            steps.append(('conv', ConvParams.from_conv(module, dtype)))
        elif isinstance(module, nn.GroupNorm):
            steps.append(('group_norm',
                          (module.num_groups, module.weight.detach().float(),
                           module.bias.detach().float(), module.eps)))
        elif isinstance(module, nn.GELU) and module.approximate == 'none':
            steps.append(('gelu', None))
        else:
            raise DeployRefused(f'SimpleFPN: layer '
                                      f'{type(module).__name__}')
    return steps


def run_fused_branch(x: Tensor, steps: list) -> Tensor:
    for kind, params in steps:
        if kind == 'conv_transpose':
            x = conv_transpose(x, params)
        elif kind == 'conv':
            x = conv(x, params)
        elif kind == 'group_norm':
            groups, weight, bias, eps = params
            x = F.group_norm(x, groups, weight, bias, eps)
        else:
            x = F.gelu(x)
    return x


class LayerBiases:
    """Per-layer relative biases of the fused route for a token grid.

    Dense cached tensors (the layers' own per-grid cache) when the grid fits
    the cache budget, :class:`GatheredBias` otherwise; the resized index is
    kept for the last grid (one for all layers when they share it).

    Args:
        attns: the layers' ``RelPosMAEAttention`` modules.
    """

    def __init__(self, attns: Sequence[nn.Module]) -> None:
        self.attns = list(attns)
        first = self.attns[0].relative_position_index
        self._shared_index = all(
            torch.equal(a.relative_position_index, first)
            for a in self.attns)
        self._index: Optional[List[Tensor]] = None
        self._index_grid: Optional[Tuple[int, int]] = None

    def __call__(self, hw_shape: Tuple[int, int]) -> list:
        """Per-layer relative bias: cached dense tensors when the grid fits
        the backbone's cache budget, :class:`GatheredBias` otherwise."""
        attns = self.attns
        if all(a._fits_cache(hw_shape) for a in attns):
            return [a.rel_pos_bias(hw_shape) for a in attns]
        if self._index_grid != hw_shape:
            self._index, self._index_grid = None, None  # free the old one
            self._index = [
                resize_rel_pos_index(a.relative_position_index, a.window_size,
                                     hw_shape).to(torch.int32)
                for a in attns[:1 if self._shared_index else len(attns)]
            ]
            self._index_grid = hw_shape
        return [
            GatheredBias(a.relative_position_bias_table,
                         self._index[i if len(self._index) > 1 else 0])
            for i, a in enumerate(attns)
        ]

