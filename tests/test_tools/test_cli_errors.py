"""User errors end in one line ``error: ...`` and exit 2 in every tool;
``--debug`` shows the traceback."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICKSTART = osp.join(REPO, 'configs', 'interformer_quickstart.py')
DEBUG_CONFIG = osp.join(REPO, 'configs', '_base_', 'models',
                        'interformer_debug.py')


def _tool(relpath):
    path = osp.join(REPO, 'tools', relpath)
    name = '_cli_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(relpath, argv, capsys):
    from interformer.utils.cli import run_tool
    with pytest.raises(SystemExit) as info:
        run_tool(_tool(relpath).main, argv)
    err = capsys.readouterr().err.strip()
    return info.value.code, err


def _one_line_error(code, err, *names):
    assert code == 2, err
    assert err.startswith('error: '), err
    assert 'Traceback' not in err, err
    for name in names:
        assert name in err, err


@pytest.mark.parametrize('relpath, argv, names', [
    ('train.py', ['nope.py'], ['nope.py']),
    ('train.py', [QUICKSTART, '--cfg-options', 'foo_bar=1'], ['foo_bar']),
    ('train.py', [QUICKSTART, '--cfg-options', 'train_cfg.max_iter=2'],
     ['max_iter', 'max_iters']),
    ('train.py', [QUICKSTART, '--cfg-options', 'model.neck.nonexistent=1'],
     ['model.neck', 'nonexistent']),
    ('train.py', [QUICKSTART, '--launcher', 'pytorch'],
     ['--launcher pytorch', 'torchrun']),
    ('model_summary.py', ['missing_cfg.py'], ['missing_cfg.py']),
    ('clicktest.py', [DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root',
                      'no/such/folder'], ['no/such/folder']),
    ('clicktest.py', [DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root',
                      'x', '--cfg-options', 'model.neck.nonexistent=1'],
     ['nonexistent']),
    ('clicktest.py', [DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root',
                      'x', '--device', 'cuda:7'], ['--device', 'cuda:7']),
    ('clicktest.py', [DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root',
                      'x', '--device', 'gpu0'], ['--device', 'gpu0']),
    ('clicktest.py', [DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root',
                      'x', '--launcher', 'pytorch'], ['dist_clicktest.sh']),
    ('quickstart.py', ['--config', 'missing_quickstart.py', '--work-dir',
                       'unused'], ['missing_quickstart.py']),
    ('model_converters/mae2interformer.py', ['missing.pth', 'out.pth'],
     ['missing.pth']),
    ('model_converters/official2interformer.py', ['missing.pth', 'o.pth'],
     ['missing.pth']),
    ('deploy/benchmark_browser.py', ['--onnx-dir', 'x', '--size', '12'],
     ['12']),
    ('deploy/benchmark_browser.py', ['--onnx-dir', 'x', '--clicks', '0'],
     ['--clicks']),
    ('deploy/benchmark_browser.py', ['--onnx-dir', 'x', '--chromium',
                                     'no/chromium'], ['no/chromium']),
    ('benchmark.py', ['--sizes', '352x'], ['--sizes', '352x']),
    ('benchmark.py', ['--clicks', '0'], ['--clicks']),
])
def test_user_errors_are_one_line(relpath, argv, names, capsys, tmp_path,
                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('RANK', raising=False)
    code, err = _run(relpath, argv, capsys)
    _one_line_error(code, err, *names)


def test_cuda_device_without_cuda_is_a_user_error(capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    code, err = _run('clicktest.py', [
        DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root', 'x',
        '--device', 'cuda'
    ], capsys)
    _one_line_error(code, err, '--device cuda', 'CUDA is not available')


def test_debug_flag_shows_the_traceback(capsys):
    from interformer.utils.cli import run_tool
    with pytest.raises(FileNotFoundError, match='nope.py'):
        run_tool(_tool('train.py').main, ['nope.py', '--debug'])


def test_genuine_bugs_keep_their_traceback():
    from interformer.utils.cli import run_tool

    def buggy(argv):
        raise TypeError('a bug')

    with pytest.raises(TypeError):
        run_tool(buggy, [])


def test_exit_status_from_the_shell(tmp_path):
    """The real process: status 2, one stderr line, no traceback."""
    env = dict(PYTHONPATH=REPO, PATH='/usr/bin:/bin')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'),
         str(tmp_path / 'missing.py')],
        capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('error: ') and 'missing.py' in lines[-1]
    assert 'Traceback' not in proc.stderr


def test_quickstart_takes_work_dir_and_out_alias():
    tool = _tool('quickstart.py')
    assert tool.parse_args(['--work-dir', 'a']).work_dir == 'a'
    assert tool.parse_args(['--out', 'b']).work_dir == 'b'


def test_error_from_a_dataloader_worker_is_one_line():
    from interformer.utils.cli import format_user_error
    wrapped = ValueError(
        'Caught DamagedImageError in DataLoader worker process 0.\n'
        'Original Traceback (most recent call last):\n'
        '  File "x.py", line 1, in <module>\n'
        'interformer.datasets.image_check.DamagedImageError: damaged image '
        'file a.jpg: truncated')
    assert format_user_error(wrapped) == \
        'error: damaged image file a.jpg: truncated'


def test_init_model_refuses_unread_cfg_options():
    from mmengine.config import Config

    from interformer.apis import init_model
    from interformer.utils.cli import UserError
    for config in (DEBUG_CONFIG, Config.fromfile(DEBUG_CONFIG)):
        with pytest.raises(UserError, match='nonexistent'):
            init_model(config, cfg_options={'model.neck.nonexistent': 1})
    loaded = Config.fromfile(DEBUG_CONFIG)
    model = init_model(loaded, cfg_options={'model.decode_head.channels': 8})
    assert model.decode_head.channels == 8
    assert loaded.model.decode_head.channels != 8  # the caller's is kept
