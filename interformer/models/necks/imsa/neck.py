"""I-MSA: the per-click neck of InterFormer.

Queries carry the clicks, keys/values carry the image::

    ref_label (B,1,H,W) --embed--> /4 map --+
                                            v
    F0 --------------------------------> x0 = F0 + emb
    stage i: x -> coarse blocks (block 0 cross-attends to F_i) -> out_i
             out_i -> PatchMerging -> x for stage i+1
             out_i -> refine blocks (optionally only inside the ROI)
                   -> norm{i} -> output i

The image features ``F_i`` are computed once per image by the backbone; the
pooled keys/values of every stage's first block depend on ``F_i`` only (see
:meth:`IMSA.image_key_values`).

Deployed (:meth:`IMSA.switch_to_deploy`, one object on one image on the
CPU), the maps stay channels-last in the working dtype (float32 or
bfloat16), the click embedding is one table lookup at stride 4
(:mod:`.click_embedding`), the blocks and PatchMerging run their own fused
routes and the output norms a fused GroupNorm; the outputs are the same to
1e-4 in float32.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmseg.registry import MODELS
from torch import Tensor

from ...utils.deployable import (
    Deployable,
    DeployRefused,
    deploy_suspended,
    to_param_dtype,
)
from ...utils.fused_norms import FusedGroupNorm
from ...utils.fused_ops import channels_last
from .attention import KeyValue
from .blocks import GROUP_NORM_EPS, PoolingBlock
from .click_embedding import embed_reference_label, quad_table
from .patch_merging import PatchMerging
from .pooled_kv import PooledKeyValue
from .zoom_in import RoiLike, run_blocks, run_blocks_in_roi

__all__ = ['IMSA', 'IMSAStage', 'RefineStage']

NUM_STAGES = 4
NUM_REF_STATES = 5  # reference-label codes 0..4, see interaction
DEFAULT_POOL_RATIOS = ((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6),
                       (1, 2, 3, 4))


class IMSAStage(nn.Module):
    """Coarse blocks of one stage and the PatchMerging that follows it.

    ``blocks[0]`` cross-attends to the image feature of the stage, the other
    blocks self-attend. ``downsample`` is ``None`` for the last stage.
    """

    def __init__(self, blocks: List[PoolingBlock],
                 downsample: Optional[PatchMerging]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: Tensor, image_kv: KeyValue) -> Tensor:
        """x (B, C, H, W) and the first block's K/V -> coarse output."""
        x = self.blocks[0](x, key_value=image_kv)
        for block in self.blocks[1:]:
            x = block(x)
        return x


class RefineStage(nn.Module):
    """Self-attention refine blocks of one stage (may be empty)."""

    def __init__(self, blocks: List[PoolingBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self,
                x: Tensor,
                roi: Optional[RoiLike] = None,
                stride: int = 1) -> Tensor:
        """Refine the whole map, or only the ROI crop (zoom-in)."""
        if roi is None:
            return run_blocks(self.blocks, x)
        return run_blocks_in_roi(self.blocks, x, roi, stride)


@dataclass
class _FusedNeck:
    table: Tensor  # (num_ref_states, C0) float32 click embeddings
    quad: Tensor  # quad_table(table) in the working dtype
    norms: List[FusedGroupNorm]  # norm0..norm3


@MODELS.register_module()
class IMSA(Deployable, BaseModule):
    """Interaction-aware multi-scale attention (I-MSA) neck.

    Args:
        target_size: (H, W) training resolution; with the strides it fixes
            the pooled key/value grids (``T = target / stride``).
        in_channels: channels of the 4 image features (and of the stages).
        num_heads: attention heads per stage.
        depths: blocks per stage (coarse + refine).
        refine_start: coarse blocks per stage; blocks from this index on are
            refine blocks. Must be >= 1 (block 0 is the cross-attention).
        mlp_ratio: MLP expansion per stage.
        strides: stride of stage 0 w.r.t. the input, then of every stage
            w.r.t. the previous one.
        pool_ratios: pooling ratios per stage.
        qkv_bias: bias in the query / key-value projections.
        drop_path_rate: stochastic depth, linear from 0 over all blocks.
        num_ref_states: rows of the click-embedding table ``patch_embed``.
        init_cfg: mmengine init config; ``None`` uses the built-in init.
    """

    def __init__(self,
                 target_size: Sequence[int] = (512, 512),
                 in_channels: Sequence[int] = (32, 64, 128, 256),
                 num_heads: Sequence[int] = (1, 2, 4, 8),
                 depths: Sequence[int] = (1, 1, 2, 1),
                 refine_start: Sequence[int] = (1, 1, 2, 1),
                 mlp_ratio: Sequence[float] = (8, 8, 4, 4),
                 strides: Sequence[int] = (4, 2, 2, 2),
                 pool_ratios: Sequence[Sequence[int]] = DEFAULT_POOL_RATIOS,
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.1,
                 num_ref_states: int = NUM_REF_STATES,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        per_stage = dict(
            in_channels=in_channels,
            num_heads=num_heads,
            depths=depths,
            refine_start=refine_start,
            mlp_ratio=mlp_ratio,
            strides=strides,
            pool_ratios=pool_ratios)
        for name, value in per_stage.items():
            if len(value) != NUM_STAGES:
                raise ValueError(f'IMSA: {name} needs {NUM_STAGES} entries, '
                                 f'got {tuple(value)}')
        for i in range(NUM_STAGES):
            if not 1 <= refine_start[i] <= depths[i]:
                raise ValueError(f'IMSA: need 1 <= refine_start[{i}] <= '
                                 f'depths[{i}], got refine_start='
                                 f'{tuple(refine_start)}, '
                                 f'depths={tuple(depths)}')
        if len(target_size) != 2:
            raise ValueError(f'IMSA: target_size must be (H, W), got '
                             f'{target_size}')
        self.in_channels = tuple(in_channels)
        self.depths = tuple(depths)
        self.refine_start = tuple(refine_start)
        self.num_ref_states = num_ref_states
        self.cum_strides = tuple(
            math.prod(strides[:i + 1]) for i in range(NUM_STAGES))

        self.patch_embed = nn.Parameter(
            torch.empty(num_ref_states, in_channels[0]))
        nn.init.xavier_normal_(self.patch_embed)

        # Explicit CPU: also works when the model is built on 'meta'.
        dpr = torch.linspace(
            0, drop_path_rate, sum(depths), device='cpu').tolist()
        stages, refine_stages = [], []
        for i in range(NUM_STAGES):
            target_grid = (target_size[0] / self.cum_strides[i],
                           target_size[1] / self.cum_strides[i])
            rates = dpr[sum(depths[:i]):sum(depths[:i + 1])]
            blocks = [
                PoolingBlock(
                    in_channels[i],
                    num_heads[i],
                    mlp_ratio=mlp_ratio[i],
                    pool_ratios=pool_ratios[i],
                    target_grid=target_grid,
                    qkv_bias=qkv_bias,
                    drop_path=rate) for rate in rates
            ]
            downsample = None
            if i + 1 < NUM_STAGES:
                downsample = PatchMerging(
                    in_channels[i], in_channels[i + 1], stride=strides[i + 1])
            stages.append(IMSAStage(blocks[:refine_start[i]], downsample))
            refine_stages.append(RefineStage(blocks[refine_start[i]:]))
        # Registration order = the official state-dict order.
        self.stages = nn.ModuleList(stages)
        self.refine_stages = nn.ModuleList(refine_stages)
        for i in range(NUM_STAGES):
            self.add_module(
                f'norm{i}',
                nn.GroupNorm(1, in_channels[i], eps=GROUP_NORM_EPS))

    def init_weights(self) -> None:
        """Truncated-normal Linear, fan-out normal Conv, xavier table."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] \
                    * module.out_channels // module.groups
                nn.init.normal_(module.weight, 0, (2.0 / fan_out)**0.5)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.xavier_normal_(self.patch_embed)

    def embed_reference_label(self, ref_label: Tensor,
                              size: Tuple[int, int]) -> Tensor:
        """Click embedding: table lookup at input resolution, then a
        bilinear resize (align_corners=False) to ``size``.

        Args:
            ref_label: (B, H, W) integer codes 0..4.
            size: (h, w) of the stride-4 grid.

        Returns:
            Tensor: (B, C0, h, w).
        """
        emb = F.embedding(ref_label.long(), self.patch_embed)
        emb = emb.permute(0, 3, 1, 2)
        return F.interpolate(
            emb, size=size, mode='bilinear', align_corners=False)

    def _check_feats(self, image_feats: Sequence[Tensor]) -> None:
        if len(image_feats) != NUM_STAGES:
            raise ValueError(f'IMSA: expected {NUM_STAGES} image features, '
                             f'got {len(image_feats)}')
        for i, feat in enumerate(image_feats):
            if feat.dim() != 4 or feat.shape[1] != self.in_channels[i]:
                raise ValueError(f'IMSA: image feature {i} must be (B, '
                                 f'{self.in_channels[i]}, H, W), got '
                                 f'{tuple(feat.shape)}')

    def image_key_values(self,
                         image_feats: Sequence[Tensor]) -> List[KeyValue]:
        """Pooled K/V of every stage's cross-attention block.

        They depend on the image features only, so they can be computed
        once per image and passed to :meth:`forward` as ``key_values``.

        Args:
            image_feats: 4 maps (B, C_i, H_i, W_i).

        Returns:
            list[tuple[Tensor, Tensor]]: per stage, K and V of shape
            (B, heads_i, N_kv_i, head_dims_i).
        """
        self._check_feats(image_feats)
        if self._use_deployed(image_feats[0]):
            dtype = self._deploy_dtype
            image_feats = [channels_last(f.to(dtype)) for f in image_feats]
        return [
            stage.blocks[0].key_value(feat)
            for stage, feat in zip(self.stages, image_feats)
        ]

    def forward(self,
                image_feats: Sequence[Tensor],
                ref_label: Tensor,
                roi: Optional[RoiLike] = None,
                key_values: Optional[Sequence[KeyValue]] = None
                ) -> Tuple[Tensor, ...]:
        """Fuse the clicks with the image features.

        Args:
            image_feats: 4 maps (B, C_i, H/s_i, W/s_i), s = 4, 8, 16, 32.
            ref_label: (B, N, H, W) reference-label codes 0..4 at input
                resolution. N > 1 objects per image repeat the image
                features (the output batch is B * N, object-major per
                image).
            roi: optional (4,) / (B*N, 4) boxes (left, up, right, bottom) in
                input pixels; refine blocks then run only inside them.
            key_values: optional output of :meth:`image_key_values` for the
                same ``image_feats`` (B samples).

        Returns:
            tuple[Tensor]: 4 maps (B*N, C_i, H/s_i, W/s_i).
        """
        self._check_feats(image_feats)
        if ref_label.dim() != 4:
            raise ValueError(f'IMSA: ref_label must be (B, N, H, W), got '
                             f'{tuple(ref_label.shape)}')
        if ref_label.is_floating_point() or ref_label.is_complex():
            raise ValueError(f'IMSA: ref_label must hold integer codes, got '
                             f'{ref_label.dtype}')
        batch, num_objects = ref_label.shape[:2]
        if batch != image_feats[0].shape[0]:
            raise ValueError(f'IMSA: ref_label batch ({batch}) differs from '
                             f'the image features '
                             f'({image_feats[0].shape[0]})')
        low, high = (int(v) for v in torch.aminmax(ref_label))  # one pass
        if low < 0 or high >= self.num_ref_states:
            raise ValueError(f'IMSA: ref_label codes must be in '
                             f'[0, {self.num_ref_states}), got values in '
                             f'[{low}, {high}]')
        if batch * num_objects == 1 and self._use_deployed(image_feats[0]):
            return self._forward_deployed(image_feats, ref_label[:, 0], roi,
                                          key_values)
        if self._deploy_state is not None:
            # deployed, but not a fused call (several objects, hooks ...)
            with deploy_suspended():
                return self._forward(image_feats, ref_label, roi, key_values)
        return self._forward(image_feats, ref_label, roi, key_values)

    def _forward(self, image_feats: Sequence[Tensor], ref_label: Tensor,
                 roi: Optional[RoiLike],
                 key_values: Optional[Sequence]) -> Tuple[Tensor, ...]:
        """The modules' own route of :meth:`forward` (inputs checked)."""
        num_objects = ref_label.shape[1]
        image_feats = [to_param_dtype(f, self.norm0) for f in image_feats]
        if key_values is None:
            key_values = self.image_key_values(image_feats)
        key_values = [
            kv.as_pair(image_feats[0].dtype)
            if isinstance(kv, PooledKeyValue) else kv for kv in key_values
        ]
        if num_objects > 1:
            image_feats = [
                f.repeat_interleave(num_objects, dim=0) for f in image_feats
            ]
            key_values = [(k.repeat_interleave(num_objects, dim=0),
                           v.repeat_interleave(num_objects, dim=0))
                          for k, v in key_values]
        ref_label = ref_label.flatten(0, 1)

        x = image_feats[0] + self.embed_reference_label(
            ref_label, tuple(image_feats[0].shape[-2:]))
        outs = []
        for i in range(NUM_STAGES):
            coarse = self.stages[i](x, key_values[i])
            if self.stages[i].downsample is not None:
                x = self.stages[i].downsample(coarse)
            refined = self.refine_stages[i](coarse, roi, self.cum_strides[i])
            outs.append(getattr(self, f'norm{i}')(refined))
        return tuple(outs)

    # ------------------------------------------------------------- deploy
    deploy_replaces = ('forward', '_forward', 'image_key_values',
                       'embed_reference_label')

    def _build_deploy_state(self, dtype: torch.dtype) -> _FusedNeck:
        for i in range(NUM_STAGES):
            norm = getattr(self, f'norm{i}')
            if type(norm) is not nn.GroupNorm or norm.num_groups != 1:
                raise DeployRefused(f'IMSA norm{i} {norm!r}')
        table = self.patch_embed.detach().float().clone()
        return _FusedNeck(
            table=table,
            # rounded to the working dtype once: the lookup then equals the
            # float32 embedding rounded per click, without a conversion pass
            quad=quad_table(table).to(dtype),
            norms=[
                FusedGroupNorm(getattr(self, f'norm{i}'), dtype)
                for i in range(NUM_STAGES)
            ])

    def _deploy_watch_modules(self) -> Tuple[nn.Module, ...]:
        # the stages, blocks and PatchMerging run as modules (their own
        # routes); only the output norms are bypassed
        return tuple(getattr(self, f'norm{i}') for i in range(NUM_STAGES))

    def _forward_deployed(self, image_feats: Sequence[Tensor],
                          ref_label: Tensor, roi: Optional[RoiLike],
                          key_values: Optional[Sequence]
                          ) -> Tuple[Tensor, ...]:
        """The fused route for one object: ref_label (1, H, W); the
        outputs are channels-last maps in the working dtype."""
        state, dtype = self._deploy_state, self._deploy_dtype
        feats = [channels_last(f.to(dtype)) for f in image_feats]
        if key_values is None:
            key_values = self.image_key_values(feats)
        emb = embed_reference_label(ref_label, state.table,
                                    tuple(feats[0].shape[-2:]), state.quad)
        x = feats[0] + emb.to(dtype)  # no-op on the stride-4 route
        outs = []
        for i in range(NUM_STAGES):
            coarse = self.stages[i](x, key_values[i])
            if self.stages[i].downsample is not None:
                x = self.stages[i].downsample(coarse)
            refined = self.refine_stages[i](coarse, roi, self.cum_strides[i])
            outs.append(state.norms[i](refined))
        return tuple(outs)
