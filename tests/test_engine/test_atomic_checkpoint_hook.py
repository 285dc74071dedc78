"""Crash safety of AtomicCheckpointHook and atomic_write_text."""
import os
import os.path as osp

import mmengine.runner.runner as runner_module
import pytest
import torch
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import interformer  # noqa: F401
from interformer.engine import AtomicCheckpointHook, atomic_write_text


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, target, mode='loss'):
        out = self.linear(inputs)
        return dict(loss=((out - target)**2).mean())


def _dataset(n=8):
    g = torch.Generator().manual_seed(0)
    return [
        dict(inputs=torch.randn(2, generator=g), target=torch.randn(1))
        for _ in range(n)
    ]


def _runner(work_dir, max_iters, hook_type, resume=False):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_dataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=100),
            checkpoint=dict(
                type=hook_type, by_epoch=False, interval=1, max_keep_ckpts=1)),
        resume=resume,
        default_scope='mmseg',
        randomness=dict(seed=0),
        experiment_name=f'{hook_type.__name__}_{max_iters}_{resume}')


def _crash_on_iter(monkeypatch, crash_iter):
    """Make the checkpoint write die half-way through iteration N's file."""
    real = runner_module.save_checkpoint

    def dying_save(checkpoint, filename, **kwargs):
        if checkpoint['meta']['iter'] == crash_iter:
            with open(filename, 'wb') as f:
                f.write(b'\x80\x02truncated')
            raise KeyboardInterrupt('killed while writing')
        return real(checkpoint, filename, **kwargs)

    monkeypatch.setattr(runner_module, 'save_checkpoint', dying_save)


def _last(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read()


def test_crash_during_save_leaves_a_resumable_checkpoint(
        tmp_path, monkeypatch):
    work_dir = tmp_path / 'atomic'
    _crash_on_iter(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        _runner(work_dir, 3, AtomicCheckpointHook).train()
    files = sorted(os.listdir(work_dir))
    assert 'iter_3.pth' not in files
    assert not [f for f in files if f.endswith('.tmp')]
    assert _last(work_dir) == str(work_dir / 'iter_2.pth')
    ckpt = torch.load(_last(work_dir), weights_only=False)
    assert ckpt['meta']['iter'] == 2 and 'optimizer' in ckpt

    monkeypatch.undo()
    runner = _runner(work_dir, 3, AtomicCheckpointHook, resume=True)
    runner.train()
    assert runner.iter == 3
    assert _last(work_dir) == str(work_dir / 'iter_3.pth')
    # max_keep_ckpts=1: the old one goes only after the new one is safe
    assert sorted(f for f in os.listdir(work_dir) if f.endswith('.pth')) \
        == ['iter_3.pth']


def test_stock_hook_loses_the_checkpoint_in_the_same_crash(
        tmp_path, monkeypatch):
    """Shows the crash simulation is meaningful for mmengine's hook."""
    work_dir = tmp_path / 'stock'
    _crash_on_iter(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        _runner(work_dir, 3, CheckpointHook).train()
    assert _last(work_dir) == str(work_dir / 'iter_2.pth')
    assert not osp.exists(work_dir / 'iter_2.pth')  # deleted before saving
    assert osp.getsize(work_dir / 'iter_3.pth') < 100  # truncated


def test_atomic_write_text_keeps_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / 'last_checkpoint'
    atomic_write_text(str(path), 'old')

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_text(str(path), 'new')
    monkeypatch.undo()
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    atomic_write_text(str(path), 'new')
    assert path.read_text() == 'new'


def _kill_before_pointer(monkeypatch, crash_iter):
    """Kill after iter_N.pth is renamed into place, before last_checkpoint
    names it."""
    import interformer.engine.hooks.atomic_checkpoint_hook as hook_module
    real = hook_module.atomic_write_text

    def dying_write(path, text):
        if text.endswith(f'iter_{crash_iter}.pth'):
            raise KeyboardInterrupt('killed before last_checkpoint')
        return real(path, text)

    monkeypatch.setattr(hook_module, 'atomic_write_text', dying_write)


@pytest.mark.parametrize('crash_iter', [1, 2])
def test_resume_finds_checkpoint_that_last_checkpoint_misses(
        tmp_path, monkeypatch, crash_iter):
    work_dir = tmp_path / f'pointer{crash_iter}'
    _kill_before_pointer(monkeypatch, crash_iter)
    with pytest.raises(KeyboardInterrupt):
        _runner(work_dir, 3, AtomicCheckpointHook).train()
    assert osp.isfile(work_dir / f'iter_{crash_iter}.pth')
    monkeypatch.undo()
    runner = _runner(work_dir, 3, AtomicCheckpointHook, resume=True)
    resumed_at = []

    class Probe(runner_module.Hook):

        def before_train(self, runner):
            resumed_at.append(runner.iter)

    runner.register_hook(Probe())
    runner.train()
    assert resumed_at == [crash_iter]
    assert _last(work_dir) == str(work_dir / 'iter_3.pth')


def test_stale_tmp_files_are_removed_and_truncated_files_skipped(tmp_path):
    from interformer.engine import find_resume_checkpoint
    work_dir = tmp_path / 'stale'
    _runner(work_dir, 2, AtomicCheckpointHook).train()
    # a kill mid-write of a later run: a temp file and a truncated iter_5
    (work_dir / '.iter_5.pth.4242.tmp').write_bytes(b'\x80\x02partial')
    (work_dir / 'iter_5.pth').write_bytes(b'PK\x03\x04partial')
    assert find_resume_checkpoint(str(work_dir)) == str(
        work_dir / 'iter_2.pth')
    runner = _runner(work_dir, 3, AtomicCheckpointHook, resume=True)
    runner.train()
    assert runner.iter == 3
    assert not [f for f in os.listdir(work_dir) if f.endswith('.tmp')]
