"""tools/encode_images.py and tools/dist_encode.sh (issue 15, part 3):
features equal the model's, reruns skip done work, a killed run leaves
whole files only, unreadable images are recorded and fail the exit code,
the predictors take the stored features."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from deploy_utils import REPO

from interformer.apis import InterFormerPredictor
from interformer.apis.inference import init_model
from interformer.deploy import OnnxPredictor, load_features
from interformer.deploy.encode import TorchEncoder
from interformer.deploy.export import export_onnx

CONFIG = osp.join(REPO, 'configs', '_base_', 'models',
                  'interformer_debug.py')
TOOL = osp.join(REPO, 'tools', 'encode_images.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = init_model(CONFIG)
    path = tmp_path_factory.mktemp('ckpt') / 'debug.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def _images(folder, count, size=(60, 90)):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(count)
    paths = []
    for i in range(count):
        image = rng.integers(0, 255, size + (3, ), dtype=np.uint8)
        path = osp.join(folder, f'img{i:02d}.png')
        cv2.imwrite(path, image)
        paths.append(path)
    return paths


def _run(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, TOOL] + args, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          **kwargs)


def test_encode_rerun_and_failures(checkpoint, tmp_path):
    paths = _images(str(tmp_path / 'images'), 3)
    broken = tmp_path / 'images' / 'broken.jpg'
    broken.write_bytes(b'not a jpeg at all')
    store = str(tmp_path / 'store')
    proc = _run([CONFIG, checkpoint, str(tmp_path / 'images'),
                 str(tmp_path / 'missing.png'), '--out', store])
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'encoded 3, skipped 0' in proc.stdout
    assert 'FAILED' in proc.stdout and 'broken.jpg' in proc.stdout
    assert 'missing.png: cannot read' in proc.stdout
    with open(osp.join(store, 'manifest.json')) as f:
        manifest = json.load(f)
    status = {osp.basename(e['path']): e for e in manifest['images']}
    assert status['broken.jpg']['status'] == 'failed'
    assert 'not a decodable image' in status['broken.jpg']['reason']
    assert status['missing.png']['status'] == 'failed'

    # stored features = the model's own encoder outputs (float16)
    model = init_model(CONFIG, checkpoint)
    encoder = TorchEncoder(model, store_dtype='float32')
    image = cv2.cvtColor(cv2.imread(paths[0]), cv2.COLOR_BGR2RGB)
    want = encoder.encode([image])[0]
    entry = status['img00.png']
    assert entry['status'] == 'ok' and entry['size'] == [60, 90]
    got = load_features(osp.join(store, entry['file']))
    assert got.weights_sha256 == manifest['weights_sha256'] \
        == encoder.weights_sha256
    assert got.canvas_shape == (64, 96)
    for name, array in want.arrays.items():
        assert got.arrays[name].dtype == np.float16
        np.testing.assert_allclose(got.arrays[name].astype(np.float32),
                                   array, atol=2e-2, rtol=1e-2)

    # a rerun skips the done work and leaves the files untouched
    stamps = {e['file']: os.stat(osp.join(store, e['file'])).st_mtime_ns
              for e in manifest['images'] if e['status'] == 'ok'}
    os.remove(broken)
    proc = _run([CONFIG, checkpoint, str(tmp_path / 'images'), '--out',
                 store])
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert 'encoded 0, skipped 3' in proc.stdout
    for rel, stamp in stamps.items():
        assert os.stat(osp.join(store, rel)).st_mtime_ns == stamp

    # the predictors accept the stored features of their model
    export_dir = str(tmp_path / 'onnx')
    export_onnx(model, export_dir)
    onnx_predictor = OnnxPredictor(export_dir, num_threads=1)
    onnx_predictor.set_image(image, features=osp.join(store, entry['file']))
    onnx_predictor.add_click(30, 40, True)
    from_store = onnx_predictor.predict().prob
    onnx_predictor.set_image(image)
    onnx_predictor.add_click(30, 40, True)
    assert np.abs(onnx_predictor.predict().prob - from_store).max() < 2e-2
    stored = osp.join(store, entry['file'])
    for path in ('fast', 'reference'):
        predictor = InterFormerPredictor(model, path=path)
        predictor.set_image(image, features=stored)
        predictor.add_click(30, 40, True)
        prob = predictor.predict().prob
        assert np.abs(prob - from_store).max() < 2e-2, path
        predictor.set_image(image)
        predictor.add_click(30, 40, True)
        assert np.abs(predictor.predict().prob - prob).max() < 2e-2, path
    torch.manual_seed(1)
    other = InterFormerPredictor(init_model(CONFIG))
    with pytest.raises(ValueError, match='another model'):
        other.set_image(image, features=stored)


def test_killed_run_leaves_whole_files(checkpoint, tmp_path):
    _images(str(tmp_path / 'images'), 12, size=(96, 128))
    store = str(tmp_path / 'store')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, TOOL, CONFIG, checkpoint,
         str(tmp_path / 'images'), '--out', store], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = osp.join(store, 'features')
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if osp.isdir(folder) and any(
                n.endswith('.npz') for n in os.listdir(folder)):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [n for n in os.listdir(folder) if n.endswith('.npz')]
    assert done, 'the run was killed before its first file'
    for name in done:  # every visible file is whole
        load_features(osp.join(folder, name))
    proc = _run([CONFIG, checkpoint, str(tmp_path / 'images'), '--out',
                 store])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'skipped {len(done)} ' in proc.stdout, proc.stdout
    assert f'encoded {12 - len(done)},' in proc.stdout, proc.stdout


def test_dist_encode_shards_over_ranks(checkpoint, tmp_path):
    paths = _images(str(tmp_path / 'images'), 5)
    store = str(tmp_path / 'store')
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               PORT=str(29600 + os.getpid() % 300))
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_encode.sh'), CONFIG,
         checkpoint, '2', str(tmp_path / 'images'), '--out', store],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert 'encoded 5, skipped 0' in proc.stdout
    with open(osp.join(store, 'manifest.json')) as f:
        manifest = json.load(f)
    assert sorted(e['path'] for e in manifest['images']) == sorted(paths)
    assert all(e['status'] == 'ok' for e in manifest['images'])
