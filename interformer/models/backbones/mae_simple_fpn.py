"""MAE ViT with relative position bias and a SimpleFPN, at any input size.

This is InterFormer's once-per-image encoder. The ViT is mmseg's MAE
(BEiT-style blocks: LN eps 1e-6, GELU, layer scale, drop path, qkv with a
full bias, a zero-initialised relative-position bias per layer, absolute
pos-embed + cls token, no final norm). Only the last layer is used: its
patch tokens are reshaped to ``(B, D, H/16, W/16)`` and fed to a
:class:`SimpleFPN` stored as ``self.fpn``. The class name contains ``MAE``
so mmseg's layer-decay optimizer constructors accept it; parameter names
are those of the official checkpoints (``cls_token``, ``pos_embed``,
``patch_embed.projection``, ``layers.{i}.*``, ``fpn.rescale_ops.*``).

Deployed (:meth:`MAEWithSimpleFPN.switch_to_deploy`), a batch-1 CPU image
runs the fused route of :mod:`.fused_vit` and returns channels-last levels
in the working dtype (float32: equal to 1e-4).
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmseg.models.backbones.mae import MAE
from mmseg.registry import MODELS
from torch import Tensor

from ..utils.deployable import Deployable, DeployRefused, overridden_method
from ..utils.fused_ops import channels_last
from .flexible_pos import ResizeCache, resize_pos_embed_nearest, tensor_stamp
from .fused_vit import (
    FusedViTLayer,
    LayerBiases,
    fused_fpn_branch,
    run_fused_branch,
)
from .rel_pos_layers import RelPosMAEAttention, RelPosMAELayer
from .simple_fpn import SimpleFPN

__all__ = ['MAEWithSimpleFPN']

# Input sides must be multiples of this: patch 16 and the stride-32 level.
SIZE_DIVISOR = 32
#: Strides of the pyramid levels the I-MSA neck and the heads expect.
PYRAMID_STRIDES = (4, 8, 16, 32)


@dataclass
class _FusedEncoder:
    layers: List[FusedViTLayer]
    biases: LayerBiases
    fpn: List[list]  # per SimpleFPN branch, its fused steps


@MODELS.register_module()
class MAEWithSimpleFPN(Deployable, MAE):
    """MAE ViT + SimpleFPN backbone returning a 4-level pyramid.

    Args:
        img_size: Training size; sets the pos-embed / relative-bias grid
            (512 -> 32x32 tokens).
        patch_size: Patch size.
        in_channels: Input image channels.
        embed_dims: ViT width ``D``.
        num_layers: Number of ViT blocks ``L``.
        num_heads: Attention heads.
        mlp_ratio: FFN hidden width ratio.
        qkv_bias: Whether qkv has a (full, 3*D) bias.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Stochastic depth, linear from 0 over the blocks.
        init_values: Layer-scale init.
        out_dims: Channels of the pyramid levels (/4, /8, /16, /32).
        rescales: SimpleFPN scale per level; ``patch_size / rescale`` must
            give the strides 4, 8, 16, 32 the neck and heads expect.
        norm_eps: LayerNorm epsilon.
        fpn_norm_cfg: SimpleFPN normalisation config.
        cache_size: Token grids whose resized pos-embed / relative bias are
            cached for inference (no-grad only); 0 disables the cache. The
            cached bias costs ``heads * N^2 * 4`` bytes per layer with
            ``N = 1 + h*w`` (about 0.6 GB for ViT-B and 1.6 GB for ViT-L at
            512x512, 5.4 GB / 14.5 GB at 768x1024); ``train()`` empties it.
        bias_cache_mb: Memory budget of that bias cache, all layers and
            grids together: least recently used grids are dropped to stay
            under it, and a grid whose biases alone exceed it is not cached
            (its bias is gathered again at every forward).
        norm_eval: Keep the LayerNorms in eval mode while training.
        pretrained: Path of an MAE checkpoint (deprecated; use init_cfg).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads official
            MAE weights (raw or converted; pos-embed resized bicubically).
    """

    def __init__(self,
                 img_size=512,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dims: int = 768,
                 num_layers: int = 12,
                 num_heads: int = 12,
                 mlp_ratio: int = 4,
                 qkv_bias: bool = True,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 init_values: float = 1.0,
                 out_dims: Sequence[int] = (32, 64, 128, 256),
                 rescales: Sequence[float] = (4, 2, 1, 0.5),
                 norm_eps: float = 1e-6,
                 fpn_norm_cfg: dict = dict(type='GN', num_groups=1),
                 cache_size: int = 4,
                 bias_cache_mb: float = 3072,
                 norm_eval: bool = False,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not isinstance(img_size, int):
            img_size = tuple(img_size)
        _check_args(img_size, patch_size, embed_dims, num_layers, num_heads,
                    drop_path_rate, cache_size)
        strides = tuple(patch_size / r for r in rescales)
        if strides != PYRAMID_STRIDES:
            raise ValueError(f'patch_size {patch_size} with rescales '
                             f'{tuple(rescales)} gives pyramid strides '
                             f'{strides}; expected {PYRAMID_STRIDES}')
        # Read by _build_layers(), which runs inside MAE.__init__.
        self._qkv_bias = bool(qkv_bias)
        self._cache_size = int(cache_size)
        if not bias_cache_mb >= 0:
            raise ValueError(f'bias_cache_mb must be >= 0, got '
                             f'{bias_cache_mb}')
        self._bias_cache_layer_bytes = int(bias_cache_mb * 2**20 /
                                           num_layers)
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dims=embed_dims,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            norm_cfg=dict(type='LN', eps=norm_eps),
            act_cfg=dict(type='GELU'),
            final_norm=False,
            norm_eval=norm_eval,
            pretrained=pretrained,
            init_values=init_values,
            init_cfg=init_cfg)
        self.fpn = SimpleFPN(
            in_channels=embed_dims,
            out_channels=out_dims,
            rescales=rescales,
            norm_cfg=fpn_norm_cfg)
        self.pos_cache = ResizeCache(self._cache_size)

    def _build_layers(self) -> None:
        # Explicit CPU linspace: also works when built on the meta device.
        dpr = torch.linspace(
            0, self.drop_path_rate, self.num_layers, device='cpu').tolist()
        self.layers = ModuleList([
            RelPosMAELayer(
                embed_dims=self.embed_dims,
                num_heads=self.num_heads,
                feedforward_channels=self.mlp_ratio * self.embed_dims,
                attn_drop_rate=self.attn_drop_rate,
                drop_path_rate=dpr[i],
                num_fcs=self.num_fcs,
                bias=self._qkv_bias,
                act_cfg=self.act_cfg,
                norm_cfg=self.norm_cfg,
                window_size=self.patch_shape,
                init_values=self.init_values,
                cache_size=self._cache_size,
                cache_max_bytes=self._bias_cache_layer_bytes)
            for i in range(self.num_layers)
        ])

    def init_weights(self) -> None:
        """Official init; with a Pretrained init_cfg, load MAE weights."""
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.LayerNorm):
                nn.init.constant_(module.bias, 0)
                nn.init.constant_(module.weight, 1.0)
        self.fix_init_weight()
        from ..converters import load_mae_backbone_state
        path = self.init_cfg['checkpoint']
        state = load_mae_backbone_state(path, self.patch_shape)
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not _expected_missing(k)]
        print_log(
            f'Loaded MAE weights from {path}: {len(state)} tensors, '
            f'missing {missing}, unexpected {unexpected}',
            logger='current')
        self.clear_resize_cache()

    def clear_resize_cache(self) -> None:
        """Drop every cached resized pos-embed / relative bias."""
        self.pos_cache.clear()
        for layer in self.layers:
            layer.attn.bias_cache.clear()

    def train(self, mode: bool = True) -> 'MAEWithSimpleFPN':
        super().train(mode)
        if mode:
            self.clear_resize_cache()
        return self

    def pos_embed_for(self, hw_shape: Sequence[int]) -> Tensor:
        """Absolute pos-embed ``(1, 1 + h*w, D)`` for a token grid."""
        hw_shape = (int(hw_shape[0]), int(hw_shape[1]))
        if torch.is_grad_enabled():
            return resize_pos_embed_nearest(self.pos_embed, self.patch_shape,
                                            hw_shape)
        stamp = tensor_stamp(self.pos_embed)
        cached = None if stamp is None else self.pos_cache.get(hw_shape, stamp)
        if cached is None:
            cached = resize_pos_embed_nearest(self.pos_embed, self.patch_shape,
                                              hw_shape)
            if stamp is not None:
                self.pos_cache.put(hw_shape, stamp, cached)
        return cached

    def _check_input(self, inputs: Tensor) -> None:
        if not isinstance(inputs, Tensor) or inputs.dim() != 4:
            shape = tuple(getattr(inputs, 'shape', ()))
            raise ValueError('MAEWithSimpleFPN expects a (B, C, H, W) tensor,'
                             f' got shape {shape}')
        if inputs.shape[1] != self.in_channels:
            raise ValueError(f'MAEWithSimpleFPN expects {self.in_channels} '
                             f'input channels, got {inputs.shape[1]}')
        height, width = inputs.shape[-2:]
        if height % SIZE_DIVISOR or width % SIZE_DIVISOR or not (height
                                                                 and width):
            raise ValueError(
                f'MAEWithSimpleFPN needs H and W to be positive multiples of '
                f'{SIZE_DIVISOR} (pad the image first), got {height}x{width}')

    def forward_vit(self, inputs: Tensor) -> Tensor:
        """Run the ViT only.

        Args:
            inputs: ``(B, C, H, W)`` normalised image, H and W multiples of 32.

        Returns:
            Tensor: ``(B, D, H/16, W/16)`` last-layer patch tokens.
        """
        self._check_input(inputs)
        batch = inputs.shape[0]
        x, hw_shape = self.patch_embed(inputs)
        cls_tokens = self.cls_token.expand(batch, -1, -1)
        x = torch.cat((cls_tokens, x), dim=1) + self.pos_embed_for(hw_shape)
        for layer in self.layers:
            x = layer(x, hw_shape)
        x = x[:, 1:].reshape(batch, hw_shape[0], hw_shape[1], -1)
        return x.permute(0, 3, 1, 2).contiguous()

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Encode an image into the 4-level pyramid.

        Args:
            inputs: ``(B, C, H, W)`` normalised image, H and W multiples of 32.

        Returns:
            tuple[Tensor]: ``(B, 32, H/4, W/4)``, ``(B, 64, H/8, W/8)``,
            ``(B, 128, H/16, W/16)``, ``(B, 256, H/32, W/32)`` for the
            default ``out_dims``.
        """
        if isinstance(inputs, Tensor) and inputs.dim() == 4 and \
                self._use_deployed(inputs):
            return self._forward_deployed(inputs)
        return self.fpn(self.forward_vit(inputs))

    # ------------------------------------------------------------- deploy
    deploy_replaces = ('forward', 'forward_vit')

    def _build_deploy_state(self, dtype: torch.dtype) -> _FusedEncoder:
        for i, layer in enumerate(self.layers):
            name = overridden_method(layer, RelPosMAELayer, ('forward', )) \
                or overridden_method(layer.attn, RelPosMAEAttention,
                                     ('forward', 'rel_pos_bias'))
            if name is not None:
                raise DeployRefused(f'layers.{i} overrides {name}()')
        if overridden_method(self.fpn, SimpleFPN, ('forward', )):
            raise DeployRefused('the SimpleFPN overrides forward()')
        return _FusedEncoder(
            layers=[FusedViTLayer(layer, dtype) for layer in self.layers],
            biases=LayerBiases([layer.attn for layer in self.layers]),
            fpn=[fused_fpn_branch(b, dtype) for b in self.fpn.rescale_ops])

    def _forward_deployed(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """(1, 3, H, W) normalised image -> 4 channels-last pyramid levels
        (working dtype)."""
        state = self._deploy_state
        self._check_input(inputs)
        tokens, hw_shape = self.patch_embed(inputs.float())
        hw_shape = (int(hw_shape[0]), int(hw_shape[1]))
        x = torch.cat((self.cls_token.float(), tokens), dim=1)
        x = (x + self.pos_embed_for(hw_shape)).to(self._deploy_dtype)
        for layer, bias in zip(state.layers, state.biases(hw_shape)):
            x = layer(x, bias)
        grid = x[:, 1:].reshape(1, hw_shape[0], hw_shape[1], -1)
        grid = channels_last(grid.permute(0, 3, 1, 2))
        return tuple(run_fused_branch(grid, steps) for steps in state.fpn)


def _expected_missing(key: str) -> bool:
    """Keys that MAE checkpoints never hold (learned from their init)."""
    return (key.startswith('fpn.') or 'relative_position' in key
            or '.gamma_' in key)


def _check_args(img_size, patch_size, embed_dims, num_layers, num_heads,
                drop_path_rate, cache_size) -> None:
    sizes = (img_size, img_size) if isinstance(img_size, int) else img_size
    if len(sizes) != 2 or min(sizes) <= 0:
        raise ValueError(f'img_size must be a positive int or (h, w), got '
                         f'{img_size}')
    if patch_size <= 0 or any(s % patch_size for s in sizes):
        raise ValueError(f'img_size {img_size} must be a multiple of '
                         f'patch_size {patch_size}')
    if num_layers <= 0 or num_heads <= 0 or embed_dims <= 0:
        raise ValueError('embed_dims, num_layers and num_heads must be '
                         f'positive, got {embed_dims}, {num_layers}, '
                         f'{num_heads}')
    if embed_dims % num_heads:
        raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                         f'num_heads {num_heads}')
    if not 0 <= drop_path_rate < 1 or math.isnan(drop_path_rate):
        raise ValueError(f'drop_path_rate must be in [0, 1), got '
                         f'{drop_path_rate}')
    if cache_size < 0:
        raise ValueError(f'cache_size must be >= 0, got {cache_size}')
