"""tools/serve.py: argument errors in one line, and the app it builds."""
import argparse
import importlib.util
import json
import os.path as osp
import urllib.request

import pytest

DEBUG_CONFIG = osp.join('configs', '_base_', 'models',
                        'interformer_debug.py')


@pytest.fixture(scope='module')
def serve_tool(repo_root):
    path = osp.join(repo_root, 'tools', 'serve.py')
    spec = importlib.util.spec_from_file_location('serve_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('argv, words', [
    (['nope.py', 'nope.pth'], 'not found: nope.py, nope.pth'),
    ([DEBUG_CONFIG, DEBUG_CONFIG, '--cache-mb', '-1'], '--cache-mb'),
    ([DEBUG_CONFIG, DEBUG_CONFIG, '--workers', '0'], '--workers'),
    ([DEBUG_CONFIG, DEBUG_CONFIG, '--max-pixels', '0'], '--max-pixels'),
])
def test_bad_arguments_are_one_error_line(serve_tool, repo_root, argv,
                                          words, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    with pytest.raises(SystemExit) as info:
        serve_tool.parse_args(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and 'error:' in err and words in err
    assert 'Traceback' not in err


def test_built_app_serves_api_demo_and_metrics(tiny_model, repo_root,
                                               tmp_path):
    import torch

    from interformer.serving.cli import build_app
    from interformer.serving.launch import ServerThread
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': tiny_model.state_dict()}, checkpoint)
    args = argparse.Namespace(
        config=osp.join(repo_root, DEBUG_CONFIG), checkpoint=checkpoint,
        device='cpu', precision='fp32', max_upload_mb=5,
        max_pixels=2**20)
    with ServerThread(build_app(args, demo=True, cache_mb=16)) as server:
        def get(path):
            with urllib.request.urlopen(server.url.rstrip('/') + path,
                                        timeout=30) as resp:
                return resp.read()
        assert b'<canvas id="canvas"' in get('/')
        assert json.loads(get('/api/config'))['max_upload_mb'] == 5
        assert b'interformer_cache_max_bytes 16777216' in get('/metrics')
        assert json.loads(get('/label-studio/health'))['status'] == 'UP'
