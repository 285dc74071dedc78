"""Fixtures for the demo tests: a real InterFormerPredictor on a stand-in.

``ColorSegmentor`` has the ClickSegmentor inference API and segments the
pixels whose colour is close to the mean colour under the positive click
disks, minus the negative disks. It is deterministic, fast, and reacts to
clicks like a real model, so the session, server and page can be tested
through the real ``InterFormerPredictor``.
"""
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
