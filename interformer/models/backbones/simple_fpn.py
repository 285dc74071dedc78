"""ViTDet-style simple feature pyramid on a single stride-16 ViT map.

Every branch reads the same last-layer ViT map (stride 16) and rescales it
by a factor of 4, 2, 1 or 0.5. The module layout follows the official
checkpoints: ``rescale_ops.{i}`` is an ``nn.Sequential`` whose indices hold
the layers below (GN = GroupNorm with one group, d = max(D // 2, 64)):

====  ======  ============================================================
x4    /4      ConvT2x2 D->d, GN, GELU, ConvT2x2 d->d/2, GN, 1x1 -> C, GN, GELU
x2    /8      ConvT2x2 D->d, GN, 1x1 -> C, GN, GELU
x1    /16     1x1 -> C, GN, GELU
x0.5  /32     Conv2x2 s2 D->2D, GN, 1x1 -> C, GN, GELU
====  ======  ============================================================
"""
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor

__all__ = ['SimpleFPN']

SUPPORTED_RESCALES = (4, 2, 1, 0.5)
MIN_HIDDEN_CHANNELS = 64


@MODELS.register_module()
class SimpleFPN(BaseModule):
    """Multi-scale pyramid from one ViT feature map.

    Args:
        in_channels: Channels ``D`` of the ViT map.
        out_channels: Output channels per branch.
        rescales: Scale factor per branch, each one of (4, 2, 1, 0.5).
        norm_cfg: Normalisation layer config (GroupNorm with one group).
        act_cfg: Activation config.
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 768,
                 out_channels: Sequence[int] = (32, 64, 128, 256),
                 rescales: Sequence[float] = (4, 2, 1, 0.5),
                 norm_cfg: dict = dict(type='GN', num_groups=1),
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels <= 0:
            raise ValueError(f'in_channels must be positive, got '
                             f'{in_channels}')
        if len(out_channels) != len(rescales):
            raise ValueError(f'out_channels {tuple(out_channels)} and '
                             f'rescales {tuple(rescales)} differ in length')
        for scale in rescales:
            if scale not in SUPPORTED_RESCALES:
                raise ValueError(f'unsupported rescale {scale}; expected one '
                                 f'of {SUPPORTED_RESCALES}')
        self.in_channels = in_channels
        self.out_channels = tuple(int(c) for c in out_channels)
        self.rescales = tuple(rescales)
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.rescale_ops = nn.ModuleList([
            self._build_branch(scale, channels)
            for scale, channels in zip(self.rescales, self.out_channels)
        ])

    def _norm(self, channels: int) -> nn.Module:
        return build_norm_layer(self.norm_cfg, channels)[1]

    def _act(self) -> nn.Module:
        return build_activation_layer(self.act_cfg)

    def _build_branch(self, scale: float, out_channels: int) -> nn.Sequential:
        dim = self.in_channels
        hidden = max(dim // 2, MIN_HIDDEN_CHANNELS)
        if scale == 4:
            layers = [
                nn.ConvTranspose2d(dim, hidden, 2, stride=2),
                self._norm(hidden),
                self._act(),
                nn.ConvTranspose2d(hidden, hidden // 2, 2, stride=2),
                self._norm(hidden // 2),
            ]
            last = hidden // 2
        elif scale == 2:
            layers = [
                nn.ConvTranspose2d(dim, hidden, 2, stride=2),
                self._norm(hidden),
            ]
            last = hidden
        elif scale == 1:
            layers, last = [], dim
        else:  # 0.5
            layers = [
                nn.Conv2d(dim, 2 * dim, 2, stride=2),
                self._norm(2 * dim)
            ]
            last = 2 * dim
        layers += [
            nn.Conv2d(last, out_channels, 1),
            self._norm(out_channels),
            self._act(),
        ]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Build the pyramid.

        Args:
            x: ``(B, D, h, w)`` ViT map at stride 16 (``h``, ``w`` even when
                a 0.5 branch exists).

        Returns:
            tuple[Tensor]: One ``(B, C_i, h * s_i, w * s_i)`` map per branch.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SimpleFPN expects (B, {self.in_channels}, h, '
                             f'w) input, got {tuple(x.shape)}')
        outs: List[Tensor] = [op(x) for op in self.rescale_ops]
        return tuple(outs)
