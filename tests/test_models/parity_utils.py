"""Helpers for the official-parity tests: load a fixture, derive the model
architecture from its weights, build and load our segmentor."""
import copy
import math
import os.path as osp
import re
from typing import Dict

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from interformer.models.converters import convert_official_interformer

#: The template whose head/neck hyper-parameters the official configs share;
#: every size that the weights determine is overridden.
TEMPLATE = osp.join('configs', '_base_', 'models', 'interformer_light.py')
NECK_HEAD_DIMS = 32  # I-MSA head width (the head split is not in the weights)
BLOCK_KEY = re.compile(
    r'^neck\.(stages|refine_stages)\.(\d+)\.blocks\.(\d+)\.')


def load_fixture(path: str) -> Dict[str, np.ndarray]:
    """All arrays of an ``.npz`` fixture (read eagerly, file closed)."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def fixture_state_dict(
        arrays: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    """``sd/<key>`` arrays -> converted state dict (float16 -> float32)."""
    raw = {}
    for key, value in arrays.items():
        if key.startswith('sd/'):
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            raw[key[3:]] = torch.from_numpy(np.ascontiguousarray(value))
    return convert_official_interformer(raw)


def _count(state: Dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for k in state for m in [regex.match(k)] if m}
    return max(found) + 1 if found else 0


def derive_model_cfg(state: Dict[str, torch.Tensor], root: str) -> Config:
    """Model config whose sizes all come from the state dict's shapes."""
    cfg = Config.fromfile(osp.join(root, TEMPLATE))
    model = copy.deepcopy(cfg.model)
    embed_dims = state['backbone.cls_token'].shape[-1]
    patch = state['backbone.patch_embed.projection.weight'].shape[-1]
    num_rel = state['backbone.layers.0.attn.relative_position_index'].shape[0]
    grid = math.isqrt(num_rel - 1)
    img_size = grid * patch
    ffn = state['backbone.layers.0.ffn.layers.0.0.weight'].shape[0]
    model.backbone.update(
        embed_dims=embed_dims,
        num_layers=_count(state, r'^backbone\.layers\.(\d+)\.'),
        num_heads=state['backbone.layers.0.attn.relative_position_bias_table']
        .shape[1],
        patch_size=patch,
        img_size=(img_size, img_size),
        mlp_ratio=ffn // embed_dims,
        init_cfg=None)

    channels = [state[f'neck.norm{i}.weight'].numel() for i in range(4)]
    coarse, refine = [0] * 4, [0] * 4
    for key in state:
        match = BLOCK_KEY.match(key)
        if match:
            counts = coarse if match.group(1) == 'stages' else refine
            stage, block = int(match.group(2)), int(match.group(3))
            counts[stage] = max(counts[stage], block + 1)
    mlp_ratio = [
        state[f'neck.stages.{i}.blocks.0.mlp.0.weight'].shape[0] / c
        for i, c in enumerate(channels)
    ]
    model.neck.update(
        target_size=(img_size, img_size),
        in_channels=channels,
        num_heads=[c // NECK_HEAD_DIMS for c in channels],
        depths=[c + r for c, r in zip(coarse, refine)],
        refine_start=coarse,
        mlp_ratio=mlp_ratio)
    model.decode_head.update(
        in_channels=channels,
        channels=state['decode_head.conv_seg.weight'].shape[1])
    model.auxiliary_head.update(
        in_channels=channels[2],
        channels=state['auxiliary_head.conv_seg.weight'].shape[1])
    return model


def build_from_fixture(arrays: Dict[str, np.ndarray], root: str,
                       segmentor_type: str = 'ClickSegmentor'):
    """Build our segmentor for a fixture, load its weights strictly, eval."""
    init_default_scope('mmseg')
    state = fixture_state_dict(arrays)
    cfg = derive_model_cfg(state, root)
    cfg.type = segmentor_type
    model = revert_sync_batchnorm(MODELS.build(cfg))
    model.load_state_dict(state, strict=True)
    return model.eval()

