"""Training end to end on tiny data: Runner, checkpoint + resume, launchers.

The data is written here in the real COCO-panoptic and LVIS v1 formats
(with the training-data tests' writers); the model is the tiny debug
InterFormer; crops are 64x64.
"""
import copy
import importlib.util
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import interformer  # noqa: F401

CROP = (64, 64)
LEAF_CONFIGS = {
    'configs/interformer_light_coco_lvis_320k.py': (12, 0.65, 768),
    'configs/interformer_tiny_coco_lvis_320k.py': (24, 0.75, 1024),
}


def _formats(repo_root):
    path = osp.join(repo_root, 'tests', 'test_datasets',
                    'tiny_coco_formats.py')
    spec = importlib.util.spec_from_file_location('_tiny_coco_formats', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_data(repo_root, data_dir):
    fmt = _formats(repo_root)
    fmt.write_coco_panoptic(
        osp.join(data_dir, 'coco2017'), [
            dict(
                id=9,
                height=48,
                width=72,
                segments=[
                    (5000, 184, (0, 0, 48, 72)),
                    (300, 1, (8, 10, 30, 40)),
                    (70000, 3, (20, 44, 44, 70)),
                ]),
            dict(
                id=25,
                height=80,
                width=60,
                segments=[
                    (12, 187, (0, 0, 30, 60)),
                    (13, 1, (36, 6, 76, 50)),
                ]),
        ])
    box = fmt.polygon_of_box
    fmt.write_lvis(data_dir, [
        dict(
            id=30,
            height=70,
            width=50,
            polygons=[[box(5, 5, 40, 30)], [box(30, 20, 66, 46)]]),
        dict(
            id=31,
            height=40,
            width=90,
            polygons=[[box(2, 50, 38, 88)], [box(10, 4, 30, 40)]]),
    ])


def _tiny_pipeline(pipeline):
    """The dataset config's pipeline with 64x64 crops."""
    pipeline = copy.deepcopy(pipeline)
    for step in pipeline:
        if step['type'] == 'PadToMinSize':
            step['size'] = CROP
        if step['type'] == 'RandomCrop':
            step['crop_size'] = CROP
    assert [s['type']
            for s in pipeline][-2:] == ['ObjectSampler', 'PackSegInputs']
    return pipeline


@pytest.fixture(scope='module')
def tiny_config(repo_root, tmp_path_factory):
    """A config file: debug model + the real schedule/runtime + tiny data."""
    root = tmp_path_factory.mktemp('train')
    data_dir = str(root / 'data')
    _write_data(repo_root, data_dir)
    base = osp.join(repo_root, 'configs', '_base_')
    data_cfg = Config.fromfile(
        osp.join(base, 'datasets', 'coco_lvis_512x512.py'))
    loader = data_cfg.train_dataloader.to_dict()
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    panoptic, lvis = loader['dataset']['datasets']
    assert (panoptic['type'], lvis['type']) == ('COCOPanopticDataset',
                                                'LVISDataset')
    panoptic['data_root'] = osp.join(data_dir, 'coco2017')
    lvis['data_root'] = data_dir
    for dataset in (panoptic, lvis):
        dataset['pipeline'] = _tiny_pipeline(dataset['pipeline'])

    text = f'''_base_ = [
    {osp.join(base, 'models', 'interformer_debug.py')!r},
    {osp.join(base, 'schedules', 'schedule_320k.py')!r},
    {osp.join(base, 'default_runtime.py')!r},
]
crop_size = {CROP!r}
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size),
    neck=dict(target_size=crop_size))
train_dataloader = {loader!r}
optim_wrapper = dict(paramwise_cfg=dict(num_layers=2))
train_cfg = dict(max_iters=2)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False)
'''
    path = root / 'tiny_interformer.py'
    path.write_text(text)
    return str(path)


def _run_train(repo_root, args, env=None, timeout=240):
    cmd = [sys.executable, osp.join(repo_root, 'tools', 'train.py')] + args
    full_env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run(
        cmd,
        cwd=repo_root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def _assert_state_equal(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_state_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_state_equal(x, y)
    else:
        assert a == b


@pytest.mark.parametrize('config', sorted(LEAF_CONFIGS))
def test_leaf_configs(repo_root, config):
    num_layers, decay, dims = LEAF_CONFIGS[config]
    cfg = Config.fromfile(osp.join(repo_root, config))
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == num_layers
    assert cfg.optim_wrapper.paramwise_cfg.decay_rate == decay
    assert cfg.model.backbone.num_layers == num_layers
    assert cfg.model.backbone.embed_dims == dims
    assert cfg.optim_wrapper.optimizer == dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05,
        fused=True)
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_cfg.max_iters == 320000
    assert cfg.default_hooks.checkpoint.interval == 20000
    assert cfg.randomness.seed == 42
    assert cfg.model.train_cfg.extra_click_k == 1.7


@pytest.fixture(scope='module')
def dist_run(repo_root, tiny_config, tmp_path_factory):
    """Seed command line, 2 CPU processes: dist_train.sh CFG 2 --seed 42."""
    if torch.cuda.is_available():
        pytest.skip('the CPU (gloo) path is tested on machines without CUDA')
    work_dir = str(tmp_path_factory.mktemp('dist') / 'work')
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        PORT=str(29500 + os.getpid() % 1000))
    start = time.time()
    proc = subprocess.run([
        'bash',
        osp.join(repo_root, 'tools', 'dist_train.sh'), tiny_config, '2',
        '--seed', '42', '--no-validate', '--work-dir', work_dir
    ],
                          cwd=repo_root,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    wall = time.time() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f'2-process dist_train.sh wall time: {wall:.1f} s')
    return work_dir, proc.stdout + proc.stderr


def _copy_work_dir(src, dst):
    """Copy a work dir, re-pointing last_checkpoint to the copy."""
    shutil.copytree(src, dst)
    name = osp.basename(open(osp.join(src, 'last_checkpoint')).read())
    with open(osp.join(dst, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(dst, name))


def test_dist_train_two_cpu_processes(dist_run):
    work_dir, log = dist_run
    # mmengine's environment report: a 2-rank gloo run
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert 'Iter(train) [2/2]' in log
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, 'iter_2.pth')
    ckpt = _load(osp.join(work_dir, 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2 and ckpt['meta']['seed'] == 42
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    state = ckpt['optimizer']['state']
    assert state and all(int(s['step']) == 2 for s in state.values())
    # 2 ViT layers -> layer ids 0..3: lr scales 0.65^3, 0.65^2, 0.65, 1
    groups = ckpt['optimizer']['param_groups']
    scales = sorted({round(g['initial_lr'] / 1e-4, 12) for g in groups})
    assert scales == pytest.approx([0.65**3, 0.65**2, 0.65, 1.0])
    assert {g['weight_decay'] for g in groups} == {0.0, 0.05}


class _CaptureResumeState(Hook):
    """Records the state the Runner restored, before training goes on."""
    priority = 'VERY_LOW'

    def before_train(self, runner):
        self.iter = runner.iter
        self.optimizer = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.schedulers = [
            copy.deepcopy(s.state_dict())
            for s in runner.param_schedulers or []
        ]
        self.model = copy.deepcopy(runner.model.state_dict())


def test_resume_continues_at_iteration_2_with_identical_state(
        dist_run, tiny_config, tmp_path):
    work_dir = str(tmp_path / 'resume')
    _copy_work_dir(dist_run[0], work_dir)
    ckpt2 = _load(osp.join(work_dir, 'iter_2.pth'))
    cfg = Config.fromfile(tiny_config)
    cfg.work_dir = work_dir
    cfg.resume = True
    cfg.train_cfg.max_iters = 3
    cfg.experiment_name = 'resume_in_process'
    runner = Runner.from_cfg(cfg)
    capture = _CaptureResumeState()
    runner.register_hook(capture)
    runner.train()
    assert capture.iter == 2 and runner.iter == 3
    _assert_state_equal(capture.optimizer, ckpt2['optimizer'])
    _assert_state_equal(capture.schedulers, ckpt2['param_schedulers'])
    _assert_state_equal(capture.model, ckpt2['state_dict'])
    ckpt3 = _load(osp.join(work_dir, 'iter_3.pth'))
    assert ckpt3['meta']['iter'] == 3
    assert all(
        int(s['step']) == 3 for s in ckpt3['optimizer']['state'].values())


def test_cli_resume_flag(repo_root, dist_run, tiny_config, tmp_path):
    work_dir = str(tmp_path / 'cli')
    _copy_work_dir(dist_run[0], work_dir)
    proc = _run_train(repo_root, [
        tiny_config, '--work-dir', work_dir, '--resume', '--no-validate',
        '--seed', '7', '--cfg-options', 'train_cfg.max_iters=3'
    ])
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 2' in log
    # --seed reached the config; resuming keeps the checkpoint's seed
    assert 'checkpoint "42" is different from the value in `randomness` ' \
        'config "7"' in log
    ckpt3 = _load(osp.join(work_dir, 'iter_3.pth'))
    assert ckpt3['meta']['iter'] == 3
    # max_keep_ckpts=2 in the tiny config: iter_1 went once iter_3 was safe
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) \
        == ['iter_2.pth', 'iter_3.pth']


def test_same_seed_same_weights(tiny_config, tmp_path):
    """Seeded: data order, augmentation, click simulation and init repeat."""
    states, inits = [], []
    for run in range(2):
        cfg = Config.fromfile(tiny_config)
        cfg.work_dir = str(tmp_path / f'run{run}')
        cfg.train_cfg.max_iters = 1
        cfg.randomness.seed = 5
        cfg.experiment_name = f'seeded_{run}'
        # a real step (the warmup starts at lr 1e-10, below float32 ulp)
        cfg.param_scheduler = None
        cfg.optim_wrapper.optimizer.lr = 1e-2
        runner = Runner.from_cfg(cfg)
        capture = _CaptureResumeState()
        runner.register_hook(capture)
        runner.train()
        states.append(runner.model.state_dict())
        inits.append(capture.model)
    _assert_state_equal(states[0], states[1])
    moved = [
        k for k, v in states[0].items()
        if v.is_floating_point() and not torch.equal(v, inits[0][k])
    ]
    assert any(k.startswith('neck.') for k in moved)
    assert any(k.startswith('decode_head.') for k in moved)


def _train_module(repo_root):
    path = osp.join(repo_root, 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('_train_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_amp_switch(repo_root):
    train = _train_module(repo_root)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    if torch.cuda.is_available():
        train.enable_amp(cfg, 'bfloat16')
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16'
        return
    train.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    with pytest.raises(ValueError, match='float16 needs CUDA'):
        train.enable_amp(
            Config(dict(optim_wrapper=dict(type='OptimWrapper'))), 'float16')
    with pytest.raises(ValueError, match='OptimWrapper'):
        train.enable_amp(Config(dict(optim_wrapper=dict(type='Other'))))
