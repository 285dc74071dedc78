"""The launch scripts pass the right arguments (fake srun / python)."""
import os
import os.path as osp
import stat
import subprocess

import pytest

# prints its arguments one per line, then the PYTHONPATH it got
ECHO = ('#!/usr/bin/env bash\n'
        'printf "%s\\n" "$@"\n'
        'echo "PYTHONPATH=$PYTHONPATH"\n')


def _fake(path):
    path.write_text(ECHO)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _run(repo_root, script, args, env, cwd=None):
    proc = subprocess.run(
        ['bash', osp.join(repo_root, 'tools', script)] + args,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30)
    return proc


@pytest.mark.parametrize('script, args', [
    ('dist_train.sh', ['missing_cfg.py', '2']),
    ('slurm_train.sh', ['part', 'job', 'missing_cfg.py']),
    ('dist_clicktest.sh', ['missing_cfg.py', 'missing.pth', '2']),
])
def test_missing_config_is_one_line_before_launch(repo_root, tmp_path,
                                                  script, args):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    _fake(bin_dir / 'srun')
    python = _fake(tmp_path / 'python')
    proc = _run(repo_root, script, args,
                dict(PYTHON=python, PATH=f'{bin_dir}:{os.environ["PATH"]}'),
                cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith('error: ')
    assert 'missing_cfg.py' in proc.stderr and proc.stdout == ''


def test_dist_train_multi_node_arguments(repo_root, tmp_path):
    python = _fake(tmp_path / 'python')
    (tmp_path / 'cfg.py').write_text('')
    proc = _run(
        repo_root, 'dist_train.sh', ['cfg.py', '4', '--seed', '42'],
        dict(
            PYTHON=python,
            NNODES='2',
            NODE_RANK='1',
            MASTER_ADDR='10.0.0.7',
            PORT='29611'), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ['-m', 'torch.distributed.run']
    for expected in ('--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.7',
                     '--nproc_per_node=4', '--master_port=29611'):
        assert expected in lines
    train = lines.index(osp.join(repo_root, 'tools', 'train.py'))
    assert lines[train + 1:train +
                 6] == ['cfg.py', '--launcher', 'pytorch', '--seed', '42']
    assert f'PYTHONPATH={repo_root}' in proc.stdout


def test_dist_train_defaults_and_usage(repo_root, tmp_path):
    python = _fake(tmp_path / 'python')
    launch_vars = ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT')
    env = {k: v for k, v in os.environ.items() if k not in launch_vars}
    env['PYTHON'] = python
    script = osp.join(repo_root, 'tools', 'dist_train.sh')
    (tmp_path / 'c.py').write_text('')
    proc = subprocess.run(['bash', script, 'c.py', '2'],
                          env=env,
                          capture_output=True,
                          text=True,
                          cwd=str(tmp_path),
                          timeout=30)
    lines = proc.stdout.splitlines()
    for expected in ('--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
                     '--master_port=29500'):
        assert expected in lines
    proc = subprocess.run(['bash', script, 'only_config.py'],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=30)
    assert proc.returncode == 2 and 'usage' in proc.stderr


@pytest.mark.parametrize('gpus,per_node', [('8', '4')])
def test_slurm_train_arguments(repo_root, tmp_path, gpus, per_node):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    _fake(bin_dir / 'srun')
    (tmp_path / 'cfg.py').write_text('')
    proc = _run(
        repo_root, 'slurm_train.sh',
        ['gpu_part', 'interformer', 'cfg.py', '--seed', '42'],
        dict(
            PATH=f'{bin_dir}:{os.environ["PATH"]}',
            GPUS=gpus,
            GPUS_PER_NODE=per_node,
            PYTHON='python3'), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ['-p', 'gpu_part']
    for expected in ('--job-name=interformer', f'--gres=gpu:{per_node}',
                     f'--ntasks={gpus}', f'--ntasks-per-node={per_node}',
                     '--kill-on-bad-exit=1'):
        assert expected in lines
    train = lines.index(osp.join(repo_root, 'tools', 'train.py'))
    assert lines[train - 2:train] == ['python3', '-u']
    assert lines[train + 1:train +
                 6] == ['cfg.py', '--launcher', 'slurm', '--seed', '42']


@pytest.mark.parametrize('script, args, tool, expected', [
    ('dist_clicktest.sh', ['cfg.py', 'w.pth', '3', '--num-clicks', '5'],
     'clicktest.py',
     ['cfg.py', 'w.pth', '--launcher', 'pytorch', '--num-clicks', '5']),
    ('dist_encode.sh', ['cfg.py', 'w.pth', '3', 'a.jpg', 'b/', '--out', 's'],
     'encode_images.py',
     ['cfg.py', 'w.pth', '--launcher', 'pytorch', 'a.jpg', 'b/', '--out',
      's']),
])
def test_every_dist_launcher_shares_the_torchrun_line(repo_root, tmp_path,
                                                      script, args, tool,
                                                      expected):
    """dist_clicktest.sh / dist_encode.sh start torchrun through the same
    sourced helper as dist_train.sh: --launcher after the positional
    arguments, the node variables and the default port."""
    python = _fake(tmp_path / 'python')
    (tmp_path / 'cfg.py').write_text('')
    (tmp_path / 'w.pth').write_text('')
    proc = _run(repo_root, script, args,
                dict(PYTHON=python, NNODES='2', NODE_RANK='1', PORT=''),
                cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ['-m', 'torch.distributed.run']
    assert {'--nnodes=2', '--node_rank=1', '--nproc_per_node=3'} <= set(lines)
    start = lines.index(osp.join(repo_root, 'tools', tool)) + 1
    assert lines[start:start + len(expected)] == expected
    port = 29510 if tool == 'encode_images.py' else 29500
    assert f'--master_port={port}' in lines
