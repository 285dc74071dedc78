"""ClickSegmentor on the debug config: the interactive API, mmseg's
predict path and the training loss."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import interformer  # noqa: F401  (mmcv.ops shim + registration)

DEBUG_CFG = osp.join('configs', '_base_', 'models', 'interformer_debug.py')


@pytest.fixture(scope='module')
def model_cfg(repo_root):
    init_default_scope('mmseg')
    return Config.fromfile(osp.join(repo_root, DEBUG_CFG)).model


def _build(model_cfg, **overrides):
    cfg = copy.deepcopy(model_cfg)
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_encode_once_decode_per_click(model_cfg):
    model = _build(model_cfg).eval()
    inputs = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = model.extract_image_feats(inputs)
        assert [tuple(f.shape) for f in feats] == [(2, 32, 16, 24),
                                                   (2, 64, 8, 12),
                                                   (2, 128, 4, 6),
                                                   (2, 256, 2, 3)]
        ref = torch.full((2, 1, 64, 96), 2, dtype=torch.uint8)
        logits = model.decode_clicks(feats, ref)
        assert logits.shape == (2, 2, 16, 24)
        ref[:, :, 20:30, 40:50] = 4
        clicked = model.decode_clicks(feats, ref.long())
        assert not torch.allclose(logits, clicked)
        up = model.upsample_logits(clicked, (64, 96))
        assert up.shape == (2, 2, 64, 96)
        torch.testing.assert_close(
            up, torch.nn.functional.interpolate(
                clicked, (64, 96), mode='bilinear', align_corners=False))
        # mmseg's plain forward = no clicks (all unknown).
        torch.testing.assert_close(model._forward(inputs), logits)


def test_predict_returns_seg_data_samples(model_cfg):
    model = _build(model_cfg).eval()
    sample = SegDataSample(metainfo=dict(
        img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 64), [sample])
    assert out[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert out[0].seg_logits.data.shape == (2, 64, 64)


def test_needs_a_neck(model_cfg):
    with pytest.raises(ValueError, match='neck'):
        _build(model_cfg, neck=None)


def test_loss_runs_simulation_and_backpropagates(model_cfg):
    pytest.importorskip('interformer.interaction.click_simulation')
    model = _build(model_cfg, train_cfg=dict(max_num_clicks=1)).train()
    gt = torch.zeros(2, 1, 64, 64, dtype=torch.long)
    gt[0, :, 16:48, 8:40] = 1
    gt[1, :, 30:60, 30:60] = 1
    gt[1, :, :4] = 255
    samples = []
    for label in gt:
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert {'decode.loss_nfl', 'aux.loss_nfl'} <= set(losses)
    total = losses['decode.loss_nfl'] + losses['aux.loss_nfl']
    assert torch.isfinite(total) and total > 0
    total.backward()
    grad = model.backbone.patch_embed.projection.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.neck.patch_embed.grad.abs().sum() > 0
    assert model.training
