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


def _mae_file(tmp_path, dim=32, layers=2, drop=()):
    """A complete timm-style MAE file (minus the keys in ``drop``)."""
    state = {
        'cls_token': torch.randn(1, 1, dim),
        'pos_embed': torch.randn(1, 1 + 14 * 14, dim),
        'patch_embed.proj.weight': torch.randn(dim, 3, 16, 16),
        'patch_embed.proj.bias': torch.randn(dim),
        'norm.weight': torch.ones(dim),
    }
    shapes = {'norm1': (dim, ), 'attn.qkv': (3 * dim, dim),
              'attn.proj': (dim, dim), 'norm2': (dim, ),
              'mlp.fc1': (4 * dim, dim), 'mlp.fc2': (dim, 4 * dim)}
    for i in range(layers):
        for name, shape in shapes.items():
            state[f'blocks.{i}.{name}.weight'] = torch.randn(shape)
            state[f'blocks.{i}.{name}.bias'] = torch.randn(shape[0])
    state = {k: v for k, v in state.items()
             if not any(k.startswith(d) for d in drop)}
    path = tmp_path / 'mae.pth'
    torch.save({'model': state}, path)
    return str(path), state


def _tiny_cfg(tmp_path, layers=2):
    path = tmp_path / f'tiny_mae_{layers}.py'
    path.write_text(CONFIG.format(backbone=_kwargs(
        dict(TINY_BACKBONE, num_layers=layers))))
    return str(path)


def test_mae2interformer(repo_root, tmp_path, capsys):
    tool = _tool(repo_root, 'mae2interformer')
    src, raw = _mae_file(tmp_path)
    dst = str(tmp_path / 'out' / 'converted.pth')
    cfg = _tiny_cfg(tmp_path)
    assert tool.main([src, dst, '--config', cfg, '--grid', '4', '4']) == 0
    out = capsys.readouterr().out
    # 4 + 12 per block; the rest of the backbone is learned from init
    assert 'mapped 28, missing 0 (' in out and 'unexpected 0' in out
    assert 'learned from their init' in out
    state = torch.load(dst, weights_only=True)
    assert state['pos_embed'].shape == (1, 17, 32)
    assert torch.equal(state['layers.1.ffn.layers.0.0.weight'],
                       raw['blocks.1.mlp.fc1.weight'])
    assert 'norm.weight' not in state
    model = MAEWithSimpleFPN(
        img_size=64, embed_dims=32, num_layers=2, num_heads=2)
    model.load_state_dict(state, strict=False)
    assert osp.isfile(dst) and len(list((tmp_path / 'out').iterdir())) == 1


def _script(repo_root, name, argv, monkeypatch, capsys):
    """Run the tool as ``python tools/...py ARGS``: (exit code, stderr)."""
    script = osp.join(repo_root, *TOOLS, f'{name}.py')
    monkeypatch.setattr(sys, 'argv', [script, *argv])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(script, run_name='__main__')
    return info.value.code, capsys.readouterr().err.strip()


def test_mae2interformer_errors(repo_root, tmp_path, capsys, monkeypatch):
    src, _ = _mae_file(tmp_path)
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(open(src, 'rb').read()[:100])
    dst = tmp_path / 'never.pth'
    code, err = _script(repo_root, 'mae2interformer',
                        [str(broken), str(dst)], monkeypatch, capsys)
    assert code == 2 and err.count('error:') == 1 and 'broken.pth' in err
    assert not dst.exists()
    missing = str(tmp_path / 'missing.pth')
    code, err = _script(repo_root, 'mae2interformer', [missing, str(dst)],
                        monkeypatch, capsys)
    assert code == 2
    assert err == f'error: checkpoint file not found: {missing}'
    # --grid 0 0: an argument error, not a torch traceback
    code, err = _script(repo_root, 'mae2interformer',
                        [src, str(dst), '--grid', '0', '0'], monkeypatch,
                        capsys)
    assert code == 2 and '--grid needs two positive sizes' in err
    assert 'Traceback' not in err and not dst.exists()


@pytest.mark.parametrize('drop, expected', [
    # half of every block's keys: a partial file
    (('blocks.0.mlp', 'blocks.1.mlp', 'blocks.0.norm2', 'blocks.1.norm2'),
     r'lacks 12 of the 28 keys'),
    # a whole block: the layer count comes from the config, not the file
    (('blocks.1.', ), r'lacks 12 of the 28 keys.*no weights at all: \[1\]'),
])
def test_mae2interformer_counts_missing_against_the_config(
        repo_root, tmp_path, capsys, monkeypatch, drop, expected):
    import re
    src, _ = _mae_file(tmp_path, drop=drop)
    cfg = _tiny_cfg(tmp_path)
    dst = tmp_path / 'partial.pth'
    code, err = _script(repo_root, 'mae2interformer',
                        [src, str(dst), '--config', cfg], monkeypatch,
                        capsys)
    assert code == 2 and re.search(expected, err), err
    assert not dst.exists()
    tool = _tool(repo_root, 'mae2interformer')
    assert tool.main([src, str(dst), '--config', cfg,
                      '--allow-missing']) == 0
    assert 'warning: ' in capsys.readouterr().out and dst.exists()


def test_converter_output_follows_the_umask(repo_root, tmp_path, capsys):
    import os
    import stat
    tool = _tool(repo_root, 'mae2interformer')
    src, _ = _mae_file(tmp_path)
    dst = tmp_path / 'mode.pth'
    old = os.umask(0o022)
    try:
        tool.main([src, str(dst), '--config', _tiny_cfg(tmp_path)])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o644


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
    with pytest.raises(ValueError, match=r'keys differ .*\(--strict\)'):
        tool.main([src, dst, '--config', cfg, '--strict'])
    assert 'unexpected: neck.extra' in capsys.readouterr().out


def test_official2interformer_shape_mismatch(repo_root, tmp_path, capsys,
                                             monkeypatch):
    bad = {'module.backbone.cls_token': torch.zeros(1, 1, 5)}
    src, cfg, _ = _official_file(tmp_path, bad)
    dst = tmp_path / 'out.pth'
    code, err = _script(repo_root, 'official2interformer',
                        [src, str(dst), '--config', cfg], monkeypatch,
                        capsys)
    assert code == 2 and err.startswith('error: shape mismatch')
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
