"""Fixtures for the demo tests: a real InterFormerPredictor on a stand-in.

``ColorSegmentor`` has the ClickSegmentor inference API and segments the
pixels whose colour is close to the mean colour under the positive click
disks, minus the negative disks. It is deterministic, fast, and reacts to
clicks like a real model, so the session, server and page can be tested
through the real ``InterFormerPredictor``. ``deployed``: the debug
InterFormer with the files of the deploy tools (checkpoint, ONNX export,
feature store) for ``tools/demo.py --features / --client-decoding``.
"""
import importlib.util
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interformer.apis import InterFormerPredictor
from interformer.demo.app import build_demo_app
from interformer.interaction import REF_DEFINITE_BG, REF_DEFINITE_FG

COLOR_TOLERANCE = 0.6  # in ImageNet-normalised units


class ColorSegmentor(torch.nn.Module):
    """Colour-similarity stand-in for ClickSegmentor (counts calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.encode_calls = 0
        self.decode_calls = 0

    def extract_image_feats(self, inputs):
        self.encode_calls += 1
        return [inputs.clone()]

    def decode_clicks(self, feats, ref_label, prev_mask=None, roi=None):
        self.decode_calls += 1
        image = feats[0]  # (B, 3, H, W)
        pos = ref_label == REF_DEFINITE_FG  # (B, 1, H, W)
        neg = ref_label == REF_DEFINITE_BG
        count = pos.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        mean = (image * pos).sum(dim=(2, 3), keepdim=True) / count
        dist = (image - mean).norm(dim=1, keepdim=True)
        score = COLOR_TOLERANCE - dist
        score = torch.where(pos.any(dim=(2, 3), keepdim=True), score,
                            torch.full_like(score, -1.0))
        score = torch.where(neg, torch.full_like(score, -1.0), score)
        logits = torch.cat([-score, score], dim=1) * 10
        return F.avg_pool2d(logits, 4)

    def upsample_logits(self, logits, size):
        # nearest keeps the 4-aligned test squares exact
        return F.interpolate(logits, size=size, mode='nearest')


@pytest.fixture
def color_predictor():
    return InterFormerPredictor(ColorSegmentor())


def shapes_image(height: int = 96, width: int = 128) -> np.ndarray:
    """Grey background, a red square at [16:48, 16:48], a blue one at
    [40:80, 72:112] (RGB uint8)."""
    image = np.full((height, width, 3), 128, np.uint8)
    image[16:48, 16:48] = (220, 40, 40)
    image[40:80, 72:112] = (40, 60, 220)
    return image


@pytest.fixture
def image():
    return shapes_image()


@pytest.fixture
def running_server():
    """Serve the demo app (uvicorn) on a free port in a thread; yields a
    starter returning the server (``.url``)."""
    from interformer.serving.launch import ServerThread
    servers = []

    def start(predictor_factory=lambda: InterFormerPredictor(
            ColorSegmentor()), **kwargs):
        server = ServerThread(build_demo_app(predictor_factory, **kwargs))
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope='session')
def demo_tool(repo_root):
    """tools/demo.py as a module."""
    path = osp.join(repo_root, 'tools', 'demo.py')
    spec = importlib.util.spec_from_file_location('demo_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEBUG_CONFIG = osp.join('configs', '_base_', 'models',
                        'interformer_debug.py')


@pytest.fixture(scope='session')
def deployed(repo_root, tmp_path_factory):
    """The debug InterFormer as the deploy tools leave it: a checkpoint,
    its fp16 ONNX export, a feature store of one upload and the bundled
    example ``shapes.png``, and a checkpoint of another model."""
    from mmengine.registry import DefaultScope

    from interformer.apis import init_model
    from interformer.demo.app import EXAMPLES_DIR
    from interformer.deploy.encode import (
        TorchEncoder,
        encode_to_store,
        write_manifest,
    )
    from interformer.deploy.export import export_onnx
    root = tmp_path_factory.mktemp('demo_deploy')
    config = osp.join(repo_root, DEBUG_CONFIG)
    checkpoints = []
    with DefaultScope.overwrite_default_scope('mmseg'):
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = init_model(config)
            checkpoints.append(str(root / f'debug{seed}.pth'))
            torch.save({'state_dict': model.state_dict()}, checkpoints[-1])
        model = init_model(config, checkpoints[0])
    upload = str(root / 'upload.png')
    cv2.imwrite(upload, shapes_image()[:, :, ::-1])
    store = str(root / 'store')
    encoder = TorchEncoder(model)
    summary = encode_to_store(
        encoder, [upload, osp.join(EXAMPLES_DIR, 'shapes.png')], store)
    write_manifest(store, summary, encoder.weights_sha256, 'float16')
    export = str(root / 'onnx')
    export_onnx(model, export, fp16=True)
    return SimpleNamespace(config=config, checkpoint=checkpoints[0],
                           other_checkpoint=checkpoints[1], store=store,
                           export=export, upload=upload)
