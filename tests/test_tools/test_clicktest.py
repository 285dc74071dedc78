"""tools/clicktest.py and tools/dist_clicktest.sh end to end: stand-in
predictors named by a config, the real debug model, and a 2-process gloo run
that must give the single-process JSON."""
import importlib.util
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest

from interformer.evaluation import resolve_config_and_checkpoint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STANDINS_DIR = osp.join(REPO, 'tests', 'test_evaluation')
SUBSET = ['124080', '153077', '153093', '181079', '189080']


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'clicktest_tool', osp.join(REPO, 'tools', 'clicktest.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


@pytest.fixture
def standin_config(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(STANDINS_DIR)
    path = tmp_path / 'standin_disk.py'
    path.write_text("predictor = dict(type='click_test_standins.DiskPredictor'"
                    ', radius=30, size_divisor=32)\n')
    return str(path)


@pytest.fixture
def grabcut_subset(tmp_path, grabcut_root):
    """Five real GrabCut objects in the RITM data_GT/boundary_GT layout."""
    root = tmp_path / 'GrabCut5'
    for sub, src in (('data_GT', 'img'), ('boundary_GT', 'gt')):
        os.makedirs(root / sub)
        for name in os.listdir(osp.join(grabcut_root, src)):
            if osp.splitext(name)[0] in SUBSET:
                shutil.copy(osp.join(grabcut_root, src, name), root / sub)
    return str(root)


def _deterministic(path):
    with open(path) as f:
        data = json.load(f)
    assert data.pop('timing')['world_size'] >= 1
    return data


def test_tool_prints_table_and_writes_outputs(tool, standin_config,
                                              grabcut_subset, tmp_path,
                                              capsys):
    work = str(tmp_path / 'out')
    result = tool.main([
        standin_config, '--dataset', 'grabcut', '--data-root',
        grabcut_subset, '--protocol', 'official', '--work-dir', work,
        '--iou-thrs', '0.85', '0.9', '0.95', '--seed', '5', '--no-progress'
    ])
    out = capsys.readouterr().out
    assert '|  official   |  GrabCut  |' in out
    assert 'NoC@95 = ' in out and 'Dec s/click' in out
    data = _deterministic(osp.join(work, 'clicktest_grabcut_official.json'))
    assert [i['name'] for i in data['instances']] == SUBSET
    assert all(len(i['ious']) == 20 for i in data['instances'])
    assert data['seed'] == 5 and data['protocol']['iou_thrs'] == [
        0.85, 0.9, 0.95
    ]
    assert data['meta']['checkpoint'] is None
    assert data['summary']['NoC@90'] == pytest.approx(
        result.summary()['NoC@90'])
    assert osp.getsize(osp.join(work, 'clicktest_grabcut_official.png')) > 0


def test_dist_clicktest_equals_single_process(tool, standin_config,
                                              grabcut_subset, tmp_path):
    args = [
        '--dataset', 'grabcut', '--data-root', grabcut_subset,
        '--protocol', 'official', '--seed', '3', '--no-progress'
    ]
    single = str(tmp_path / 'single')
    tool.main([standin_config, *args, '--work-dir', single])
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(port),
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join([STANDINS_DIR] + [
            p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p
        ]))
    double = str(tmp_path / 'double')
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_clicktest.sh'),
         standin_config, '2', *args, '--work-dir', double],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('|  official   |  GrabCut  |') == 1  # rank 0
    name = 'clicktest_grabcut_official.json'
    with open(osp.join(double, name)) as f:
        assert json.load(f)['timing']['world_size'] == 2
    assert _deterministic(osp.join(double, name)) == _deterministic(
        osp.join(single, name))


def _tiny_folder(root):
    """Two small random images with a rectangle object (img/ + gt/)."""
    rng = np.random.default_rng(0)
    for sub in ('img', 'gt'):
        os.makedirs(osp.join(root, sub))
    for k, (h, w) in enumerate([(40, 56), (64, 48)]):
        cv2.imwrite(osp.join(root, 'img', f'{k}.png'),
                    rng.integers(0, 256, (h, w, 3), np.uint8))
        mask = np.zeros((h, w), np.uint8)
        mask[8:30, 10:40] = 255
        cv2.imwrite(osp.join(root, 'gt', f'{k}.png'), mask)
    return root


DEBUG_CONFIG = osp.join(REPO, 'configs', '_base_', 'models',
                        'interformer_debug.py')


def test_debug_model_encodes_once_per_instance(tool, tmp_path, monkeypatch,
                                               capsys):
    """The real (tiny, random) InterFormer through the tool's default
    predictor: one backbone pass per instance, one decode per click."""
    from interformer.models.segmentors import ClickSegmentor
    calls = dict(encode=0, decode=0)
    encode, decode = (ClickSegmentor.extract_image_feats,
                      ClickSegmentor.decode_clicks)

    def counted_encode(self, *a, **k):
        calls['encode'] += 1
        return encode(self, *a, **k)

    def counted_decode(self, *a, **k):
        calls['decode'] += 1
        return decode(self, *a, **k)

    monkeypatch.setattr(ClickSegmentor, 'extract_image_feats',
                        counted_encode)
    monkeypatch.setattr(ClickSegmentor, 'decode_clicks', counted_decode)
    root = _tiny_folder(str(tmp_path / 'tiny'))
    result = tool.main([
        DEBUG_CONFIG, '--dataset', 'berkeley', '--data-root', root,
        '--max-clicks', '4', '--work-dir', str(tmp_path / 'out'),
        '--no-progress'
    ])
    assert calls['encode'] == 2
    assert calls['decode'] == result.num_steps
    assert result.num_steps >= 2
    assert 'Berkeley' in capsys.readouterr().out


def test_checkpoint_weights_are_used(tool, tmp_path):
    """A checkpoint in the Runner / converter format ({'state_dict',
    'meta'}) is loaded: the tool reproduces the in-memory model's run."""
    import torch

    from interformer.apis import InterFormerPredictor, init_model
    from interformer.datasets.click_eval import BerkeleyDataset
    from interformer.evaluation import run_click_test

    torch.manual_seed(7)
    model = init_model(DEBUG_CONFIG)
    ckpt = str(tmp_path / 'converted.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(converted_from='official.pth')), ckpt)
    root = _tiny_folder(str(tmp_path / 'tiny'))
    expected = run_click_test(InterFormerPredictor(model),
                              BerkeleyDataset(root), 'official',
                              progress=False)
    result = tool.main([
        DEBUG_CONFIG, ckpt, '--dataset', 'berkeley', '--data-root', root,
        '--protocol', 'official', '--max-clicks', '20', '--work-dir',
        str(tmp_path / 'out'), '--no-progress'
    ])
    assert [(i.clicks, i.ious) for i in result.instances] == [
        (i.clicks, i.ious) for i in expected.instances
    ]
    assert min(i.ious[0] for i in expected.instances) > 0.05  # not trivial
    torch.manual_seed(8)  # without the checkpoint: other random weights
    fresh = tool.main([
        DEBUG_CONFIG, '--dataset', 'berkeley', '--data-root', root,
        '--protocol', 'official', '--work-dir', str(tmp_path / 'fresh'),
        '--no-progress'
    ])
    assert [i.ious for i in fresh.instances] != [
        i.ious for i in expected.instances
    ]
    data = _deterministic(
        str(tmp_path / 'out' / 'clicktest_berkeley_official.json'))
    assert data['meta']['checkpoint'] == ckpt


def test_resolve_config_and_checkpoint(tmp_path):
    ckpt = tmp_path / 'run' / 'iter_100.pth'
    os.makedirs(ckpt.parent)
    ckpt.write_bytes(b'x')
    with pytest.raises(ValueError, match='found 0 \\*.py'):
        resolve_config_and_checkpoint([str(ckpt)])
    cfg = ckpt.parent / 'model.py'
    cfg.write_text('x = 1\n')
    assert resolve_config_and_checkpoint([str(ckpt)]) == (str(cfg),
                                                          str(ckpt))
    assert resolve_config_and_checkpoint([str(cfg)]) == (str(cfg), None)
    assert resolve_config_and_checkpoint([str(cfg), str(ckpt)]) == (str(cfg),
                                                                    str(ckpt))
    (ckpt.parent / 'other.py').write_text('y = 2\n')
    with pytest.raises(ValueError, match='pass CONFIG CHECKPOINT'):
        resolve_config_and_checkpoint([str(ckpt)])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        resolve_config_and_checkpoint(
            [str(cfg), str(tmp_path / 'missing.pth')])


def test_bad_arguments_fail_clearly(tool, standin_config, tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        tool.main([standin_config, '--dataset', 'grabcut', '--data-root',
                   str(tmp_path / 'nowhere')])
    with pytest.raises(ValueError, match='unknown click-test dataset'):
        tool.main([standin_config, '--dataset', 'pascal', '--data-root',
                   str(tmp_path)])
    with pytest.raises(SystemExit):
        tool.main([standin_config, '--dataset', 'grabcut', '--data-root',
                   str(tmp_path), '--protocol', 'nope'])


def test_precision_and_path_reach_the_predictor(tool, tmp_path, monkeypatch):
    """--precision / --path build the predictor the click test runs."""
    from interformer.apis import InterFormerPredictor
    seen = []
    init = InterFormerPredictor.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append((self.precision, self.path))

    monkeypatch.setattr(InterFormerPredictor, '__init__', spy)
    root = _tiny_folder(str(tmp_path / 'tiny'))
    common = ['--dataset', 'berkeley', '--data-root', root, '--max-clicks',
              '2', '--work-dir', str(tmp_path / 'out'), '--no-progress']
    tool.main([DEBUG_CONFIG, *common])
    tool.main([DEBUG_CONFIG, *common, '--precision', 'bf16'])
    tool.main([DEBUG_CONFIG, *common, '--path', 'reference'])
    assert seen == [('fp32', 'fast'), ('bf16', 'fast'), ('fp32', 'reference')]
    with pytest.raises(SystemExit):
        tool.main([DEBUG_CONFIG, *common, '--precision', 'fp16'])


def test_precision_is_refused_for_a_standin_predictor(tool, standin_config,
                                                      grabcut_subset):
    with pytest.raises(ValueError, match='default predictor only'):
        tool.main([standin_config, '--dataset', 'grabcut', '--data-root',
                   grabcut_subset, '--precision', 'bf16', '--no-progress'])
