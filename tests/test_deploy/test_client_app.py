"""The client-decoding app of tools/deploy/serve_client.py (issue 15,
part 4) without torch: imported and served with torch blocked, it answers
the page, the model files and the encode endpoint (from encoder.onnx, or
from a feature store of the same model), and refuses bad input."""
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from deploy_utils import BLOCK_TORCH, REPO, build_tiny

from interformer.deploy import OnnxPredictor, load_features
from interformer.deploy.encode import (
    TorchEncoder,
    encode_to_store,
    write_manifest,
)
from interformer.deploy.export import export_onnx

SERVE_TORCH_FREE = BLOCK_TORCH + textwrap.dedent('''
    import json
    import urllib.error
    import urllib.request

    from interformer.deploy.client_app import build_client_app
    from interformer.serving.launch import ServerThread

    model_dir, store, stored, fresh, out = sys.argv[1:6]
    app = build_client_app(model_dir, store, max_upload_mb=1,
                           num_threads=1)

    def call(server, path, data=None):
        req = urllib.request.Request(server.url.rstrip('/') + path, data)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    answers = {}
    with ServerThread(app) as server:
        for name, path in (('stored', stored), ('fresh', fresh)):
            with open(path, 'rb') as f:
                status, headers, body = call(server, '/api/encode', f.read())
            assert status == 200, body[:300]
            with open(f'{out}.{name}.bin', 'wb') as f:
                f.write(body)
            answers[name] = headers['x-features-source']
        for path, data in (('/', None), ('/web/client.js', None),
                           ('/model/decoder.onnx', None),
                           ('/model/encoder.onnx', None),
                           ('/web/../model.json', None),
                           ('/api/encode', b'not an image'),
                           ('/api/encode', b'x' * ((1 << 20) + 1000))):
            status, _, body = call(server, path, data)
            answers[f'{path} {len(data or b"")}'] = [status, len(body),
                                                     body[:200].decode(
                                                         'latin-1')]
    answers['log'] = list(app.fastapi.state.request_log)
    answers['torch'] = 'torch' in sys.modules
    with open(out, 'w') as f:
        json.dump(answers, f)
''')


@pytest.fixture(scope='module')
def export_and_store(tmp_path_factory):
    """An fp16 export of a tiny Light model and a store of one image."""
    root = tmp_path_factory.mktemp('client_app')
    model = build_tiny('light', seed=3)
    model_dir = str(root / 'onnx')
    export_onnx(model, model_dir, fp16=True)
    rng = np.random.default_rng(0)
    paths = []
    for name in ('stored', 'fresh'):
        image = rng.integers(0, 255, (70, 100, 3), dtype=np.uint8)
        paths.append(str(root / f'{name}.png'))
        cv2.imwrite(paths[-1], image)
    store = str(root / 'store')
    encoder = TorchEncoder(model)
    summary = encode_to_store(encoder, paths[:1], store)
    write_manifest(store, summary, encoder.weights_sha256, 'float16')
    return model_dir, store, paths


def test_served_without_torch(export_and_store, tmp_path):
    from interformer.deploy.wire import decode_features
    model_dir, store, (stored, fresh) = export_and_store
    out = str(tmp_path / 'answers.json')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-c', SERVE_TORCH_FREE, model_dir, store, stored,
         fresh, out], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        answers = json.load(f)
    assert answers['torch'] is False, 'torch was imported'
    assert answers['stored'] == 'store' and answers['fresh'] == 'encoder'
    assert answers['/ 0'][0] == 200 and 'decoding in the browser' in \
        answers['/ 0'][2]
    assert answers['/web/client.js 0'][0] == 200
    assert answers['/model/decoder.onnx 0'][:2] == [
        200, osp.getsize(osp.join(model_dir, 'decoder.onnx'))]
    assert answers['/model/encoder.onnx 0'][0] == 404
    assert answers['/web/../model.json 0'][0] == 404
    bad = answers['/api/encode 12']
    assert bad[0] == 400 and 'not an image' in bad[2]
    assert answers[f'/api/encode {(1 << 20) + 1000}'][0] == 413
    assert ['POST', '/api/encode'] in answers['log']

    # the store's answer is the stored file; the encoder's is encoder.onnx
    entry = [n for n in os.listdir(osp.join(store, 'features'))]
    want = load_features(osp.join(store, 'features', entry[0]))
    header, arrays = decode_features(open(f'{out}.stored.bin', 'rb').read())
    assert header['source'] == 'store' and header['image_shape'] == [70, 100]
    assert header['canvas_shape'] == [96, 128]
    names = ['feat0'] + [f'{k}{i}' for i in range(4)
                         for k in ('key', 'value')]
    assert sorted(arrays) == sorted(names)
    for name, array in arrays.items():
        assert array.dtype == np.float16
        assert np.array_equal(array, want.arrays[name])
    header, arrays = decode_features(open(f'{out}.fresh.bin', 'rb').read())
    image = cv2.cvtColor(cv2.imread(fresh), cv2.COLOR_BGR2RGB)
    encoded = OnnxPredictor(model_dir, num_threads=1).encode(image)
    for name, array in arrays.items():
        assert np.array_equal(array, encoded.arrays[name])


def test_store_of_another_model_is_refused(export_and_store, tmp_path):
    from interformer.deploy.client_app import build_client_app
    model_dir, _, (stored, _) = export_and_store
    other = build_tiny('light', seed=4)
    encoder = TorchEncoder(other)
    store = str(tmp_path / 'store')
    write_manifest(store, encode_to_store(encoder, [stored], store),
                   encoder.weights_sha256, 'float16')
    with pytest.raises(ValueError, match='encoded by another model'):
        build_client_app(model_dir, store)
    with pytest.raises(FileNotFoundError, match='encode_images.py'):
        build_client_app(model_dir, str(tmp_path))


def test_tool_error_is_one_line_without_torch(tmp_path):
    script = BLOCK_TORCH + textwrap.dedent('''
        import runpy
        sys.argv = ['serve_client.py', sys.argv[1]]
        try:
            runpy.run_path('tools/deploy/serve_client.py',
                           run_name='__main__')
        finally:
            assert 'torch' not in sys.modules, 'torch was imported'
    ''')
    missing = str(tmp_path / 'no_export')
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', script, missing], cwd=REPO,
                          env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert err.startswith('error:') and len(err.splitlines()) == 1, err
    assert missing in err and 'export_onnx.py' in err
