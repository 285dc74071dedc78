"""Backbone parity with the official fixtures (`parity_*.npz`)."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch

from interformer.models.backbones import MAEWithSimpleFPN

ATOL = RTOL = 1e-4
PREFIX = 'sd/backbone.'
NUM_LEVELS = 4


def _fixtures(reference_dir):
    return sorted(glob.glob(osp.join(reference_dir, '*.npz')))


def _backbone_state(npz):
    state = {}
    for key in npz.files:
        if key.startswith(PREFIX):
            value = torch.from_numpy(npz[key])
            if value.is_floating_point():
                value = value.float()
            state[key[len(PREFIX):]] = value
    return state


def _build_from_state(state):
    """Read the reduced ViT size from the weight shapes."""
    embed_dims = state['cls_token'].shape[-1]
    num_layers = len(
        {k.split('.')[1]
         for k in state if k.startswith('layers.')})
    num_heads = state['layers.0.attn.relative_position_bias_table'].shape[1]
    grid = int(round((state['pos_embed'].shape[1] - 1)**0.5))
    patch = state['patch_embed.projection.weight'].shape[-1]
    out_dims = tuple(state[f'fpn.rescale_ops.{i}.{j}.weight'].shape[0]
                     for i, j in ((0, 5), (1, 2), (2, 0), (3, 2)))
    return MAEWithSimpleFPN(
        img_size=grid * patch,
        patch_size=patch,
        embed_dims=embed_dims,
        num_layers=num_layers,
        num_heads=num_heads,
        out_dims=out_dims)


def test_backbone_matches_official_fixtures(reference_dir):
    paths = _fixtures(reference_dir)
    if not paths:
        pytest.skip(f'no parity fixtures in {reference_dir}')
    for path in paths:
        npz = np.load(path)
        state = _backbone_state(npz)
        model = _build_from_state(state)
        model.load_state_dict(state, strict=True)
        model.eval()
        image = torch.from_numpy(npz['input'])[None]
        with torch.no_grad():
            vit_out = model.forward_vit(image)
            pyramid = model.fpn(vit_out)
            assert all(
                torch.equal(a, b) for a, b in zip(pyramid, model(image)))
        name = osp.basename(path)
        expected = torch.from_numpy(npz['vit_out'])
        assert vit_out.shape[1:] == expected.shape, name
        torch.testing.assert_close(
            vit_out[0], expected, atol=ATOL, rtol=RTOL, msg=name)
        assert len(pyramid) == NUM_LEVELS
        for level in range(NUM_LEVELS):
            expected = torch.from_numpy(npz[f'fpn_{level}'])
            torch.testing.assert_close(
                pyramid[level][0],
                expected,
                atol=ATOL,
                rtol=RTOL,
                msg=f'{name} fpn_{level}')
