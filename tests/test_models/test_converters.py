"""Checkpoint converters on synthetic MAE and InterFormer state dicts."""
import pytest
import torch
import torch.nn.functional as F

from interformer.models.backbones import MAEWithSimpleFPN
from interformer.models.converters import (
    check_state_dict,
    convert_mae_pretrain,
    convert_official_interformer,
    is_mae_pretrain,
    load_checkpoint_file,
    load_mae_backbone_state,
    save_checkpoint_atomic,
)

DIM, LAYERS, GRID = 32, 2, 4
TINY = dict(img_size=GRID * 16, embed_dims=DIM, num_layers=LAYERS, num_heads=2)


def mae_state(dim=DIM, layers=LAYERS, side=14):
    """Official-MAE-style (timm) keys, including keys that must be dropped."""
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    state = {
        'cls_token': rand(1, 1, dim),
        'pos_embed': rand(1, 1 + side * side, dim),
        'patch_embed.proj.weight': rand(dim, 3, 16, 16),
        'patch_embed.proj.bias': rand(dim),
        'norm.weight': rand(dim),
        'norm.bias': rand(dim),
        'mask_token': rand(1, 1, dim),
        'decoder_embed.weight': rand(16, dim),
    }
    for i in range(layers):
        p = f'blocks.{i}.'
        state.update({
            p + 'norm1.weight': rand(dim),
            p + 'norm1.bias': rand(dim),
            p + 'attn.qkv.weight': rand(3 * dim, dim),
            p + 'attn.qkv.bias': rand(3 * dim),
            p + 'attn.proj.weight': rand(dim, dim),
            p + 'attn.proj.bias': rand(dim),
            p + 'norm2.weight': rand(dim),
            p + 'norm2.bias': rand(dim),
            p + 'mlp.fc1.weight': rand(4 * dim, dim),
            p + 'mlp.fc1.bias': rand(4 * dim),
            p + 'mlp.fc2.weight': rand(dim, 4 * dim),
            p + 'mlp.fc2.bias': rand(dim),
        })
    return state


def test_convert_mae_pretrain_keys_values_and_pos_embed():
    raw = mae_state()
    assert is_mae_pretrain(raw)
    out = convert_mae_pretrain({'model': raw}, target_grid=(GRID, GRID))
    assert not any(
        k.startswith(('norm.', 'mask_token', 'decoder', 'blocks', 'backbone.'))
        for k in out)
    assert torch.equal(out['layers.1.ffn.layers.1.weight'],
                       raw['blocks.1.mlp.fc2.weight'])
    assert torch.equal(out['layers.0.ffn.layers.0.0.bias'],
                       raw['blocks.0.mlp.fc1.bias'])
    assert torch.equal(out['layers.0.ln2.weight'],
                       raw['blocks.0.norm2.weight'])
    assert torch.equal(out['patch_embed.projection.weight'],
                       raw['patch_embed.proj.weight'])
    pos = out['pos_embed']
    assert pos.shape == (1, 1 + GRID * GRID, DIM)
    assert torch.equal(pos[:, 0], raw['pos_embed'][:, 0])
    grid = raw['pos_embed'][:, 1:].reshape(1, 14, 14, DIM).permute(0, 3, 1, 2)
    expected = F.interpolate(
        grid, size=(GRID, GRID), mode='bicubic', align_corners=False)
    torch.testing.assert_close(pos[:, 1:], expected.flatten(2).transpose(1, 2))
    model = MAEWithSimpleFPN(**TINY)
    report = check_state_dict(out, model)
    assert report.unexpected == []
    assert sorted(report.mapped) == sorted(out)
    assert all(
        ('relative_position' in k or 'gamma_' in k or k.startswith('fpn.'))
        for k in report.missing)
    model.load_state_dict(out, strict=False)


def test_convert_mae_default_grid_and_qv_bias():
    raw = mae_state(layers=1)
    q, v = torch.randn(DIM), torch.randn(DIM)
    del raw['blocks.0.attn.qkv.bias']
    raw['blocks.0.attn.q_bias'], raw['blocks.0.attn.v_bias'] = q, v
    out = convert_mae_pretrain(raw)
    assert out['pos_embed'].shape == (1, 1025, DIM)
    assert torch.equal(out['layers.0.attn.qkv.bias'],
                       torch.cat((q, torch.zeros(DIM), v)))


def test_backbone_init_weights_loads_raw_mae_file(tmp_path):
    raw = mae_state()
    path = str(tmp_path / 'mae_pretrain_vit_tiny.pth')
    torch.save({'model': raw}, path)
    model = MAEWithSimpleFPN(
        **TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert torch.equal(model.layers[1].attn.qkv.weight,
                       raw['blocks.1.attn.qkv.weight'])
    assert torch.equal(model.cls_token, raw['cls_token'])
    assert model.pos_embed.shape == (1, 1 + GRID * GRID, DIM)
    assert not model.layers[0].attn.relative_position_bias_table.any()
    # A converted file with backbone.-prefixed keys loads the same way.
    prefixed = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    state = load_mae_backbone_state(_saved(tmp_path, prefixed), (GRID, GRID))
    assert torch.equal(state['pos_embed'], model.pos_embed.detach())
    assert not any('relative_position_index' in k for k in state)


def _saved(tmp_path, obj, name='ckpt.pth'):
    path = str(tmp_path / name)
    save_checkpoint_atomic(obj, path)
    return path


def _full_model_state():
    backbone = MAEWithSimpleFPN(**TINY).state_dict()
    state = {f'backbone.{k}': v for k, v in backbone.items()}
    state['decode_head.conv_seg.weight'] = torch.randn(2, 8, 1, 1)
    state['decode_head.bn.num_batches_tracked'] = torch.tensor(3)
    return state


def test_convert_official_interformer_unwraps_and_reports_renames():
    state = _full_model_state()
    wrapped = {
        'meta': {
            'mmseg_version': '0.26.0',
            'config': '...'
        },
        'state_dict': {
            f'module.{k}': v
            for k, v in state.items()
        },
        'optimizer': {
            'state': {}
        },
    }
    renames = []
    out = convert_official_interformer(wrapped, renames=renames)
    assert list(out) == list(state)
    assert all(torch.equal(out[k], state[k]) for k in state)
    assert len(renames) == len(state)
    assert renames[0] == ('module.backbone.cls_token', 'backbone.cls_token')
    assert convert_official_interformer(state).keys() == state.keys()


def test_convert_official_rejects_mae_file():
    with pytest.raises(ValueError, match='convert_mae_pretrain'):
        convert_official_interformer({'model': mae_state(layers=1)})


def test_check_state_dict_lists_every_shape_mismatch():
    state = convert_mae_pretrain(mae_state(), (GRID, GRID))
    state['layers.0.attn.qkv.weight'] = torch.zeros(5, 5)
    state['cls_token'] = torch.zeros(1, 1, 7)
    state['extra.weight'] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        check_state_dict(state, MAEWithSimpleFPN(**TINY))
    message = str(info.value)
    assert 'shape mismatch for 2 key(s)' in message
    assert 'layers.0.attn.qkv.weight: checkpoint (5, 5)' in message
    assert 'cls_token: checkpoint (1, 1, 7) vs model (1, 1, 32)' in message
    del state['layers.0.attn.qkv.weight'], state['cls_token']
    report = check_state_dict(state, MAEWithSimpleFPN(**TINY).state_dict())
    assert report.unexpected == ['extra.weight']
    assert 'layers.0.attn.qkv.weight' in report.missing
    assert report.summary().startswith(f'mapped {len(state) - 1}, missing ')


def test_load_checkpoint_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
    good = _saved(tmp_path, {'model': mae_state(layers=1)})
    with open(good, 'rb') as f:
        data = f.read()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='truncated.pth'):
        load_checkpoint_file(str(truncated))
    listed = _saved(tmp_path, [torch.zeros(1)], 'list.pth')
    with pytest.raises(ValueError, match='not a dict'):
        load_checkpoint_file(listed)
    empty = _saved(tmp_path, {'meta': {}}, 'empty.pth')
    with pytest.raises(ValueError, match='no tensors'):
        convert_official_interformer(load_checkpoint_file(empty))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['ckpt.pth', 'truncated.pth', 'list.pth', 'empty.pth'])
