"""Fixtures for the service tests: the tiny debug InterFormer (random
weights, real modules) behind a ClickEngine, served by uvicorn on a free
loopback port."""
import json
import os.path as osp
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

DEBUG_CONFIG = osp.join('configs', '_base_', 'models',
                        'interformer_debug.py')


@pytest.fixture(scope='session')
def tiny_model(repo_root):
    import torch
    from mmengine.registry import DefaultScope

    from interformer.apis import init_model
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return init_model(osp.join(repo_root, DEBUG_CONFIG))


@pytest.fixture
def engine(tiny_model):
    from interformer.serving.engine import ClickEngine
    return ClickEngine(tiny_model, cache_mb=64)


def sample_image(height=150, width=200, seed=0) -> np.ndarray:
    """RGB: a textured background and a bright disk at (y=70, x=120)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    cv2.circle(image, (120, 70), 40, (240, 200, 60), -1)
    return image


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', rgb[:, :, ::-1])
    assert ok
    return buf.tobytes()


@pytest.fixture(name='sample_image')
def sample_image_fixture():
    return sample_image


@pytest.fixture(name='png_bytes')
def png_bytes_fixture():
    return png_bytes


class Client:
    """Plain urllib client for the service."""

    def __init__(self, url: str) -> None:
        self.base = url.rstrip('/')

    def request(self, path, data=None, headers=None, method=None):
        req = urllib.request.Request(self.base + path, data=data,
                                     headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def post_json(self, path, payload):
        status, _, body = self.request(
            path, json.dumps(payload).encode(),
            {'Content-Type': 'application/json'})
        return status, json.loads(body)

    def post_image(self, data: bytes):
        status, _, body = self.request(
            '/v1/images', data, {'Content-Type': 'application/octet-stream'})
        return status, json.loads(body)


@pytest.fixture
def service(engine):
    """(server, client, engine) of the full app on a free port."""
    from interformer.serving.app import ServiceConfig, create_app
    from interformer.serving.launch import ServerThread
    app = create_app(engine, ServiceConfig(max_upload_mb=2,
                                           body_timeout_s=1.5))
    with ServerThread(app) as server:
        yield server, Client(server.url), engine
