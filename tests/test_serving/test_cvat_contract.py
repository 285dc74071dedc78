"""The CVAT nuclio function called with requests of exactly CVAT's shape
(what its lambda manager sends for an interactor): base64 frame,
pos_points / neg_points as [x, y], obj_bbox [[x1, y1], [x2, y2]] or null."""
import base64
import importlib.util
import json
import os
import os.path as osp
import types

import numpy as np
import pytest
import yaml

FUNCTION_DIR = osp.join('deploy', 'cvat', 'interformer')


class _Response:

    def __init__(self, body, headers, content_type, status_code):
        self.body = body
        self.headers = headers
        self.content_type = content_type
        self.status_code = status_code


def _context(engine):
    logger = types.SimpleNamespace(info=lambda *a: None)
    return types.SimpleNamespace(Response=_Response, logger=logger,
                                 user_data=types.SimpleNamespace(
                                     engine=engine))


@pytest.fixture
def function(repo_root):
    path = osp.join(repo_root, FUNCTION_DIR, 'main.py')
    spec = importlib.util.spec_from_file_location('cvat_interformer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_function_yaml_declares_an_interactor(repo_root):
    with open(osp.join(repo_root, FUNCTION_DIR, 'function.yaml')) as f:
        spec = yaml.safe_load(f)
    notes = spec['metadata']['annotations']
    assert notes['type'] == 'interactor'
    assert int(notes['min_pos_points']) >= 1
    assert int(notes['min_neg_points']) == 0
    assert spec['spec']['handler'] == 'main:handler'
    assert os.path.isfile(osp.join(repo_root, FUNCTION_DIR, 'main.py'))


def _event(body):
    # nuclio hands the HTTP body as bytes
    return types.SimpleNamespace(body=json.dumps(body).encode())


def test_handler_answers_cvat_requests(function, engine, sample_image,
                                       png_bytes):
    context = _context(engine)
    image = sample_image()
    frame = base64.b64encode(png_bytes(image)).decode()
    # x = column 120, y = row 70: inside the disk
    request = {'image': frame, 'pos_points': [[120.4, 70.2]],
               'neg_points': [], 'obj_bbox': None}
    response = function.handler(context, _event(request))
    assert response.status_code == 200
    answer = json.loads(response.body)
    mask = np.array(answer['mask'], np.uint8)
    assert mask.shape == (150, 200) and set(np.unique(mask)) <= {0, 1}
    # the same as the engine's own mask for the (y, x) click
    encoded, hit = engine.encode_bytes(png_bytes(image))
    from interformer.serving.engine import ObjectPrompt
    [expected] = engine.segment(encoded, [ObjectPrompt([(70, 120, True)])])
    np.testing.assert_array_equal(mask.astype(bool), expected)
    assert hit and engine.encodes == 1  # the resent frame is not re-encoded
    if expected.any():
        points = np.array(answer['points'])
        assert points.ndim == 2 and points.shape[1] == 2
        assert points[:, 0].max() < 200 and points[:, 1].max() < 150
    # a second click with a negative point and a box: one more decode only
    request.update(neg_points=[[10, 10]], obj_bbox=[[80, 30], [160, 110]])
    answer = json.loads(function.handler(context, _event(request)).body)
    mask = np.array(answer['mask'], bool)
    assert not mask[:30].any() and not mask[:, 161:].any()
    assert engine.encodes == 1


@pytest.mark.parametrize('body, status, words', [
    ({'pos_points': [[1, 1]]}, 400, 'image'),
    ({'image': 'x!x', 'pos_points': [[1, 1]]}, 400, 'base64'),
    ({'image': base64.b64encode(b'nope').decode(), 'pos_points': [[1, 1]]},
     400, 'not an image'),
    ('IMAGE', 400, 'image'),
])
def test_handler_rejects_malformed_requests(function, engine, body, status,
                                            words):
    response = function.handler(_context(engine), _event(body))
    assert response.status_code == status
    assert words in json.loads(response.body)['error']


def test_points_outside_the_frame(function, engine, sample_image,
                                  png_bytes):
    frame = base64.b64encode(png_bytes(sample_image())).decode()
    response = function.handler(_context(engine), _event({
        'image': frame, 'pos_points': [[500, 10]], 'neg_points': [],
        'obj_bbox': None}))
    assert response.status_code == 400
    assert 'outside' in json.loads(response.body)['error']
