"""CLIs in tools/model_converters (run in-process, one real subprocess)."""
import importlib.util
import os.path as osp
import runpy
import sys

import pytest
import torch

from interformer.models.backbones import MAEWithSimpleFPN

TOOLS = ('tools', 'model_converters')
TINY_BACKBONE = dict(
    type='MAEWithSimpleFPN',
    img_size=64,
    embed_dims=32,
    num_layers=2,
    num_heads=2)
CONFIG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['interformer'], allow_failed_imports=False)
model = dict(
    type='EncoderDecoder',
    backbone=dict({backbone}),
    decode_head=dict(
        type='FCNHead', in_channels=256, in_index=3, channels=8,
        num_convs=1, num_classes=2, norm_cfg=dict(type='BN')))
"""
REAL_CONFIGS = {
    'light': 'interformer_light_coco_lvis_320k.py',
    'tiny': 'interformer_tiny_coco_lvis_320k.py',
}


def _tool(repo_root, name):
    path = osp.join(repo_root, *TOOLS, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mae_file(tmp_path, dim=32, layers=2):
    state = {
        'cls_token': torch.randn(1, 1, dim),
        'pos_embed': torch.randn(1, 1 + 14 * 14, dim),
        'patch_embed.proj.weight': torch.randn(dim, 3, 16, 16),
        'patch_embed.proj.bias': torch.randn(dim),
        'norm.weight': torch.ones(dim),
    }
    for i in range(layers):
        state[f'blocks.{i}.attn.qkv.weight'] = torch.randn(3 * dim, dim)
        state[f'blocks.{i}.mlp.fc1.weight'] = torch.randn(4 * dim, dim)
    path = tmp_path / 'mae.pth'
    torch.save({'model': state}, path)
    return str(path), state


def test_mae2interformer(repo_root, tmp_path, capsys):
    tool = _tool(repo_root, 'mae2interformer')
    src, raw = _mae_file(tmp_path)
    dst = str(tmp_path / 'out' / 'converted.pth')
    assert tool.main([src, dst, '--grid', '4', '4']) == 0
    out = capsys.readouterr().out
    assert 'mapped 8, missing ' in out and 'unexpected 0' in out
    state = torch.load(dst, weights_only=True)
    assert state['pos_embed'].shape == (1, 17, 32)
    assert torch.equal(state['layers.1.ffn.layers.0.0.weight'],
                       raw['blocks.1.mlp.fc1.weight'])
    assert 'norm.weight' not in state
    model = MAEWithSimpleFPN(
        img_size=64, embed_dims=32, num_layers=2, num_heads=2)
    model.load_state_dict(state, strict=False)
    assert osp.isfile(dst) and len(list((tmp_path / 'out').iterdir())) == 1


def test_mae2interformer_errors(repo_root, tmp_path, capsys, monkeypatch):
    tool = _tool(repo_root, 'mae2interformer')
    src, _ = _mae_file(tmp_path)
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(open(src, 'rb').read()[:100])
    dst = tmp_path / 'never.pth'
    assert tool.main([str(broken), str(dst)]) == 1
    err = capsys.readouterr().err
    assert err.count('error:') == 1 and 'broken.pth' in err
    assert not dst.exists()
    # The script entry point exits non-zero with one message.
    missing = str(tmp_path / 'missing.pth')
    script = osp.join(repo_root, *TOOLS, 'mae2interformer.py')
    monkeypatch.setattr(sys, 'argv', [script, missing, str(dst)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name='__main__')
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == \
        f'error: checkpoint file not found: {missing}'


def _official_file(tmp_path, extra=None):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    cfg_path = tmp_path / 'tiny_cfg.py'
    cfg_path.write_text(CONFIG.format(backbone=_kwargs(TINY_BACKBONE)))
    model = MODELS.build(Config.fromfile(str(cfg_path)).model)
    state = {f'module.{k}': v for k, v in model.state_dict().items()}
    state.update(extra or {})
    path = tmp_path / 'official.pth'
    torch.save({'meta': {'env': 'x'}, 'state_dict': state}, path)
    return str(path), str(cfg_path), model


def _kwargs(cfg):
    return ', '.join(f'{k}={v!r}' for k, v in cfg.items())


def test_official2interformer_with_config(repo_root, tmp_path, capsys):
    tool = _tool(repo_root, 'official2interformer')
    src, cfg, model = _official_file(tmp_path)
    dst = str(tmp_path / 'converted.pth')
    assert tool.main([src, dst, '--config', cfg, '--strict']) == 0
    out = capsys.readouterr().out
    count = len(model.state_dict())
    assert f'mapped {count}, missing 0, unexpected 0' in out
    assert f'{count} tensors, {count} renamed' in out
    saved = torch.load(dst, weights_only=False)['state_dict']
    assert list(saved) == list(model.state_dict())
    # Key-level only without --config; --strict fails on an extra key.
    assert tool.main([src, dst]) == 0
    assert 'key-level conversion only' in capsys.readouterr().out
    src, cfg, _ = _official_file(tmp_path, {'neck.extra': torch.zeros(1)})
    assert tool.main([src, dst, '--config', cfg, '--strict']) == 1
    assert 'unexpected: neck.extra' in capsys.readouterr().out


def test_official2interformer_shape_mismatch(repo_root, tmp_path, capsys):
    tool = _tool(repo_root, 'official2interformer')
    bad = {'module.backbone.cls_token': torch.zeros(1, 1, 5)}
    src, cfg, _ = _official_file(tmp_path, bad)
    dst = tmp_path / 'out.pth'
    assert tool.main([src, str(dst), '--config', cfg]) == 1
    err = capsys.readouterr().err
    assert 'backbone.cls_token: checkpoint (1, 1, 5) vs model (1, 1, 32)' \
        in err
    assert not dst.exists()


@pytest.mark.parametrize(
    'variant', ['light', pytest.param('tiny', marks=pytest.mark.slow)])
def test_real_config_matches_official_layout(variant, repo_root,
                                             reference_dir):
    """The official TSV layout maps 1:1 onto the model of our config."""
    cfg = osp.join(repo_root, 'configs', REAL_CONFIGS[variant])
    tsv = osp.join(reference_dir, f'official_state_dict_keys_{variant}.tsv')
    if not (osp.isfile(cfg) and osp.isfile(tsv)):
        pytest.skip(f'{cfg} or {tsv} not available')
    tool = _tool(repo_root, 'official2interformer')
    state = {}
    with open(tsv) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            key, shape, _ = line.rstrip('\n').split('\t')
            dims = [] if shape == 'scalar' else [
                int(d) for d in shape.split('x')
            ]
            state[key] = torch.empty(dims, device='meta')
    converted = tool.convert_official_interformer({'state_dict': state})
    report = tool.check_state_dict(converted, tool.build_model(cfg))
    assert report.missing == [] and report.unexpected == []
    assert len(report.mapped) == len(state)
