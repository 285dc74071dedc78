"""tools/benchmark_train.py on CPU with the small quickstart model."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from interformer.benchmark.train_phases import PHASES, PhaseTimer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmark_train.py')
CONFIG = osp.join(REPO, 'configs', 'interformer_quickstart.py')


def _run(*args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, TOOL, *args],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=timeout)


@pytest.mark.slow
def test_phases_add_up_to_the_iteration_time(tmp_path):
    out = tmp_path / 'record.json'
    # one thread and CPU time: the check holds on a loaded machine; n = 2
    # simulated clicks in every iteration (gamma huge), so every phase's
    # median comes from alike iterations
    proc = _run(CONFIG, '--device', 'cpu', '--iters', '5', '--warmup', '2',
                '--workers', '0', '--threads', '1', '--cpu-time',
                '--batch', '2', '--num-images', '6', '--work-dir',
                str(tmp_path / 'wd'), '--json', str(out), '--profile',
                str(tmp_path / 'trace'), '--cfg-options',
                'model.train_cfg.max_num_clicks=2',
                'model.train_cfg.gamma=1e6', 'custom_hooks=[]')
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.read_text())
    for key in ('device', 'config', 'batch', 'iter_ms', 'images_per_s',
                'peak_mem_mb', 'flop_floor_ms', 'phases_ms'):
        assert key in record
    assert record['device'] == 'cpu' and record['batch'] == 2
    assert list(record['phases_ms']) == list(PHASES)
    phases = record['phases_ms']
    assert all(v >= 0 for k, v in phases.items() if k != 'other')
    # the phases' medians come from other iterations than the iteration
    # median: their sum must fall within the iterations' own spread (a
    # loaded VM moves even CPU time by tens of percent between iterations)
    total = sum(phases.values())
    spread = record['iter_ms_all']
    assert 0.9 * min(spread) <= total <= 1.1 * max(spread), (
        phases, spread)
    assert min(spread) <= record['iter_ms'] <= max(spread)
    for name in ('data', 'forward', 'backward', 'optimizer'):
        assert phases[name] > 0
    # the simulation ran: the device part (model calls, device clicks)
    assert phases['sim_device'] > 0
    assert record['images_per_s'] == pytest.approx(
        2e3 / record['iter_ms'])
    assert record['flop_floor_ms'] > 0 and record['matmul_gflops'] > 0
    assert osp.getsize(record['profile_trace']) > 0
    assert 'FLOP floor' in proc.stdout and 'sim_host' in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_without_cuda_is_one_line_error():
    proc = _run(CONFIG, '--device', 'cuda', timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'no CUDA device' in lines[0]


def test_phase_timer_is_exclusive_and_nested():
    timer = PhaseTimer(torch.device('cpu'))
    with timer.phase('forward'):
        with timer.phase('sim_host'):
            with timer.phase('sim_device'):
                sum(range(20000))
        sum(range(20000))
    totals = timer.reset()
    assert set(totals) == {'forward', 'sim_host', 'sim_device'}
    assert all(v > 0 for v in totals.values())
    assert timer.reset() == {}
    disabled = PhaseTimer(torch.device('cpu'), enabled=False)
    with disabled.phase('data'):
        pass
    assert disabled.reset() == {}
