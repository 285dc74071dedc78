"""MAEWithSimpleFPN: shapes, arguments, attention, cache, layout, LR decay."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmseg.registry import MODELS

from interformer.models.backbones import MAEWithSimpleFPN, SimpleFPN

TINY = dict(img_size=64, embed_dims=32, num_layers=2, num_heads=2)
REAL = {
    'light': dict(embed_dims=768, num_layers=12, num_heads=12),
    'tiny': dict(embed_dims=1024, num_layers=24, num_heads=16),
}
# Totals from the footer of official_state_dict_keys_{light,tiny}.tsv.
REAL_PARAMS = {'light': (87023424, 7903968), 'tiny': (305721856, 13814944)}


def _tiny(**kwargs):
    torch.manual_seed(0)
    model = MAEWithSimpleFPN(**{**TINY, **kwargs})
    with torch.no_grad():  # non-trivial bias, pos-embed and layer scale
        for name, param in model.named_parameters():
            if 'relative_position_bias_table' in name or 'pos_embed' in name:
                param.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize('size', [(64, 64), (96, 160), (160, 96), (32, 64)])
def test_output_shapes(size):
    model = _tiny()
    height, width = size
    with torch.no_grad():
        outs = model(torch.randn(2, 3, height, width))
    expected = [(2, 32, height // 4, width // 4),
                (2, 64, height // 8, width // 8),
                (2, 128, height // 16, width // 16),
                (2, 256, height // 32, width // 32)]
    assert [tuple(o.shape) for o in outs] == expected
    assert torch.isfinite(torch.cat([o.flatten() for o in outs])).all()


@pytest.mark.parametrize('shape', [(1, 3, 48, 64), (1, 3, 64, 80),
                                   (1, 4, 64, 64), (3, 64, 64)])
def test_bad_input_raises(shape):
    with pytest.raises(ValueError, match='MAEWithSimpleFPN'):
        _tiny()(torch.zeros(shape))


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_heads=3), 'divisible'),
    (dict(img_size=72), 'multiple of patch_size'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(cache_size=-1), 'cache_size'),
    (dict(num_layers=0), 'positive'),
    (dict(patch_size=8), 'pyramid strides'),
    (dict(rescales=(4, 2, 1, 1)), 'pyramid strides'),
])
def test_bad_args_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAEWithSimpleFPN(**{**TINY, **kwargs})


def test_simple_fpn_bad_args():
    with pytest.raises(ValueError, match='rescale'):
        SimpleFPN(32, (8, 8), (4, 3))
    with pytest.raises(ValueError, match='length'):
        SimpleFPN(32, (8, ), (4, 2))
    with pytest.raises(ValueError, match='SimpleFPN expects'):
        SimpleFPN(32)(torch.zeros(1, 16, 4, 4))


def test_block_details():
    model = MAEWithSimpleFPN(**TINY)
    layer = model.layers[1]
    assert layer.ln1.eps == 1e-6 and layer.ln2.eps == 1e-6
    assert torch.equal(layer.gamma_1, torch.ones(32))
    assert layer.attn.qkv.bias.shape == (96, )
    assert not layer.attn.relative_position_bias_table.any()
    assert layer.attn.relative_position_bias_table.shape == ((2 * 4 - 1)**2
                                                             + 3, 2)
    assert model.layers[0].drop_path.__class__ is nn.Identity or \
        model.layers[0].drop_path.drop_prob == 0
    assert layer.drop_path.drop_prob == pytest.approx(0.1)
    assert not hasattr(model, 'ln1')  # no final norm


def test_sdpa_matches_plain_softmax_attention():
    model = _tiny()
    attn = model.layers[0].attn
    x = torch.randn(2, 1 + 6 * 3, 32)
    with torch.no_grad():
        got = attn(x, (6, 3))
        qkv = attn.qkv(x).reshape(2, 19, 3, 2, 16).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * 16**-0.5, qkv[1], qkv[2]
        scores = q @ k.transpose(-2, -1) + attn.rel_pos_bias((6, 3))
        ref = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 19, 32)
        ref = attn.proj(ref)
    assert (got - ref).abs().max() < 1e-5


def test_resize_cache_matches_uncached_path():
    model = _tiny()
    x = torch.randn(1, 3, 96, 64)
    uncached = model(x)  # grad enabled: never cached
    assert len(model.pos_cache) == 0
    assert all(len(layer.attn.bias_cache) == 0 for layer in model.layers)
    assert uncached[0].requires_grad
    with torch.no_grad():
        first = model(x)
        assert len(model.pos_cache) == 1
        bias = model.layers[0].attn.rel_pos_bias((6, 4))
        assert bias is model.layers[0].attn.rel_pos_bias((6, 4))
        second = model(x)
    for a, b, c in zip(uncached, first, second):
        assert torch.equal(b, c)
        torch.testing.assert_close(a.detach(), b, atol=1e-5, rtol=1e-5)
    # A parameter update invalidates the cached bias and pos-embed.
    with torch.no_grad():
        model.layers[0].attn.relative_position_bias_table.add_(1.0)
        model.pos_embed.mul_(2.0)
        updated = model(x)
    fresh = model(x)
    assert not torch.equal(updated[0], first[0])
    for a, b in zip(updated, fresh):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)
    model.train()
    assert len(model.pos_cache) == 0
    assert all(len(layer.attn.bias_cache) == 0 for layer in model.layers)


def test_gradients_reach_position_parameters():
    model = _tiny()
    outs = model(torch.randn(1, 3, 96, 32))
    sum(o.sum() for o in outs).backward()
    for name in ('pos_embed', 'cls_token',
                 'layers.1.attn.relative_position_bias_table',
                 'fpn.rescale_ops.3.0.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def _read_tsv(path):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, dtype = line.rstrip('\n').split('\t')
            if key.startswith('backbone.'):
                dims = () if shape == 'scalar' else tuple(
                    int(d) for d in shape.split('x'))
                rows[key[len('backbone.'):]] = (dims, dtype)
    return rows


@pytest.mark.parametrize('variant', ['light', 'tiny'])
def test_real_backbone_layout_and_counts(variant, reference_dir):
    with torch.device('meta'):
        model = MAEWithSimpleFPN(**REAL[variant])
    ours = {
        key: (tuple(value.shape), str(value.dtype).replace('torch.', ''))
        for key, value in model.state_dict().items()
    }
    vit = sum(p.numel() for n, p in model.named_parameters()
              if not n.startswith('fpn.'))
    fpn = sum(p.numel() for p in model.fpn.parameters())
    assert (vit, fpn) == REAL_PARAMS[variant]
    path = osp.join(reference_dir, f'official_state_dict_keys_{variant}.tsv')
    if not osp.isfile(path):
        pytest.skip(f'{path} not found')
    official = _read_tsv(path)
    assert list(ours) == list(official)
    assert ours == official


def test_registry_and_layer_decay_ids():
    from mmseg.engine.optimizers import (
        LearningRateDecayOptimizerConstructor as Constructor,
    )

    class Wrapper(nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = MODELS.build(dict(type='MAEWithSimpleFPN', **TINY))
            self.decode_head = nn.Linear(2, 2)

    model = Wrapper()
    decay, num_layers = 0.5, TINY['num_layers']
    constructor = Constructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0)),
        dict(num_layers=num_layers, decay_rate=decay))
    params = []
    constructor.add_params(params, model)
    scale = {
        name: group['lr_scale']
        for group in params
        for name in group['param_names']
    }
    top = num_layers + 1
    assert scale['backbone.cls_token'] == decay**top
    assert scale['backbone.pos_embed'] == decay**top
    assert scale['backbone.patch_embed.projection.weight'] == decay**top
    for k in range(num_layers):
        assert scale[f'backbone.layers.{k}.attn.qkv.weight'] == \
            decay**(top - k - 1)
    assert scale['backbone.fpn.rescale_ops.0.0.weight'] == 1.0
    assert scale['decode_head.weight'] == 1.0


def test_non_square_build_grid():
    model = MAEWithSimpleFPN(
        img_size=[64, 96], embed_dims=32, num_layers=1, num_heads=2).eval()
    assert model.patch_shape == (4, 6)
    assert model.pos_embed.shape == (1, 1 + 4 * 6, 32)
    assert model.layers[0].attn.relative_position_index.shape == (25, 25)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 128, 64))
    assert outs[0].shape == (1, 32, 32, 16) and outs[3].shape == (1, 256, 4,
                                                                   2)
