"""tools/demo.py --features STORE and --client-decoding ONNX_DIR (issue 15):
demo sessions and the client-decoding encode endpoint answer from the
store (the encoder does not run), a store or export of another model is
refused at start-up with one error line."""
import argparse
import hashlib
import os.path as osp

import cv2
import numpy as np
import pytest
from test_server import Client

from interformer.deploy import OnnxPredictor, load_features
from interformer.deploy.wire import decode_features
from interformer.serving.cli import build_app
from interformer.serving.launch import ServerThread
from interformer.utils.cli import run_tool


def _args(deployed, **kwargs) -> argparse.Namespace:
    args = dict(config=deployed.config, checkpoint=deployed.checkpoint,
                device='cpu', precision='fp32', max_upload_mb=5,
                max_pixels=2**20, features=None, client_decoding=None)
    args.update(kwargs)
    return argparse.Namespace(**args)


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def _same_pixels_other_bytes(path: str) -> bytes:
    bgr = cv2.imread(path)
    ok, buf = cv2.imencode('.png', bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    with open(path, 'rb') as f:
        assert buf.tobytes() != f.read()
    return buf.tobytes()


def test_demo_sessions_use_stored_features(deployed):
    app = build_app(_args(deployed, features=deployed.store), cache_mb=16)
    model = app.fastapi.state.engine.model
    calls = []
    encode = model.extract_image_feats
    model.extract_image_feats = lambda *a, **k: calls.append(1) or encode(
        *a, **k)
    with ServerThread(app) as server:
        client = Client(server)
        masks = {}
        with open(deployed.upload, 'rb') as f:
            stored = f.read()
        for name, data in (
                ('store', stored),
                ('encoder', _same_pixels_other_bytes(deployed.upload))):
            status, state = client.upload(data)
            assert status == 200 and state['features'] == name, state
            assert len(calls) == (name == 'encoder')
            status, state = client.post('/api/click',
                                        {'y': 30, 'x': 30, 'positive': True})
            assert status == 200, state
            masks[name] = client.png('/api/mask.png')[1] > 0
        assert _iou(masks['store'], masks['encoder']) >= 0.98
        status, state = client.post('/api/example', {'name': 'shapes.png'})
        assert status == 200 and state['features'] == 'store', state
        assert len(calls) == 1


def test_client_decoding_demo_encodes_from_the_store(deployed):
    app = build_app(_args(deployed, features=deployed.store,
                          client_decoding=deployed.export), cache_mb=16)
    with ServerThread(app) as server:
        client = Client(server)
        status, _, body = client.request('/')
        assert status == 200 and b'decoding in the browser' in body
        status, _, body = client.request('/model/decoder.onnx')
        with open(osp.join(deployed.export, 'decoder.onnx'), 'rb') as f:
            assert status == 200 and body == f.read()
        answers = {}
        with open(deployed.upload, 'rb') as f:
            stored = f.read()
        for data in (stored, _same_pixels_other_bytes(deployed.upload)):
            status, headers, body = client.request(
                '/api/encode', data,
                {'Content-Type': 'application/octet-stream'})
            assert status == 200, body[:300]
            header, arrays = decode_features(body)
            assert headers['X-Features-Source'] == header['source']
            answers[header['source']] = arrays
        assert client.request('/health')[0] == 200  # the API stays
    assert set(answers) == {'store', 'encoder'}
    want = load_features(osp.join(  # the store names files by content
        deployed.store, 'features', hashlib.sha256(stored).hexdigest() +
        '.npz'))
    image = cv2.imread(deployed.upload)[:, :, ::-1].copy()
    onnx = OnnxPredictor(deployed.export, num_threads=1).encode(image)
    for name, array in answers['store'].items():
        assert array.dtype == np.float16
        assert np.array_equal(array, want.arrays[name])
        # the PyTorch encoder's answer: the export's encoder, to fp16
        np.testing.assert_allclose(
            answers['encoder'][name].astype(np.float32),
            onnx.arrays[name].astype(np.float32), atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize('option', ['--features', '--client-decoding'])
def test_another_models_files_are_refused(deployed, demo_tool, option,
                                          capsys):
    folder = deployed.store if option == '--features' else deployed.export
    with pytest.raises(SystemExit) as info:
        run_tool(demo_tool.main, [deployed.config,
                                  deployed.other_checkpoint, option, folder])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and len(err.splitlines()) == 1, err
    assert 'another model' in err and folder in err


@pytest.mark.parametrize('option', ['--features', '--client-decoding'])
def test_missing_folders_are_one_error_line(deployed, demo_tool, option,
                                            tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_tool(demo_tool.main, [deployed.config, deployed.checkpoint,
                                  option, str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and len(err.splitlines()) == 1, err
    assert str(tmp_path) in err and 'not found' in err


def test_service_api_answers_uploads_from_the_store(deployed):
    """tools/serve.py --features: /v1/images of a stored file uses the
    stored pyramid maps (no backbone run); its masks match the encoder's
    on the same pixels sent as other bytes."""
    import json
    import urllib.request

    from interformer.serving.outputs import rle_to_mask
    app = build_app(_args(deployed, features=deployed.store), demo=False,
                    cache_mb=16)
    engine = app.fastapi.state.engine
    calls = []
    encode = engine.model.extract_image_feats
    engine.model.extract_image_feats = \
        lambda *a, **k: calls.append(1) or encode(*a, **k)

    def post(url, data, kind):
        req = urllib.request.Request(url, data=data,
                                     headers={'Content-Type': kind})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    with open(deployed.upload, 'rb') as f:
        stored = f.read()
    masks = []
    with ServerThread(app) as server:
        for data in (stored, _same_pixels_other_bytes(deployed.upload)):
            image_id = post(server.url + 'v1/images', data,
                            'application/octet-stream')['image_id']
            answer = post(server.url + 'v1/segment', json.dumps(dict(
                image_id=image_id,
                objects=[dict(clicks=[[30, 30, True]])])).encode(),
                'application/json')
            masks.append(rle_to_mask(answer['objects'][0]['rle']))
            if not masks[1:]:
                assert engine.store_hits == 1 and not calls
        with urllib.request.urlopen(server.url + 'metrics') as resp:
            assert 'interformer_store_hits_total 1\n' in resp.read().decode()
    assert engine.store_hits == 1 and len(calls) == 1
    assert engine.stats()['store_hits'] == 1
    assert _iou(*masks) >= 0.98
