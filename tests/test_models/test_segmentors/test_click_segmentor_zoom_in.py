"""Zoom-in ROI rule and ClickSegmentorZoomIn on the debug config."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import interformer  # noqa: F401  (mmcv.ops shim + registration)
from interformer.interaction.geometry import Box
from interformer.models.segmentors.click_segmentor_zoom_in import (
    expand_box,
    zoom_in_roi,
)

DEBUG_CFG = osp.join('configs', '_base_', 'models', 'interformer_debug.py')


def _roi(mask, ref=None, **kwargs):
    mask = torch.as_tensor(mask)[None, None]
    if ref is None:
        ref = torch.full_like(mask, 2, dtype=torch.uint8)
    return zoom_in_roi(mask, ref, stride=32, **kwargs).tolist()


def test_roi_from_prediction_expands_rounds_and_snaps():
    mask = torch.zeros(256, 256, dtype=torch.bool)
    mask[100:140, 50:100] = True
    # bbox (50, 100, 100, 140); x 75 +- 35, y 120 +- 28 -> (40, 92, 110, 148)
    # expand_box works on Box (y0, x0, y1, x1); the roi tensor is x0y0x1y1
    assert expand_box(Box.from_xyxy((50, 100, 100, 140)), 256, 256, 1.4, 32,
                      1) == Box.from_xyxy((40, 92, 110, 148))
    assert _roi(mask) == [[32, 64, 128, 160]]


def test_roi_from_a_click_disk_gets_the_minimum_size():
    ref = torch.full((1, 1, 256, 256), 2, dtype=torch.uint8)
    ref[0, 0, 95:106, 95:106] = 0  # a negative click covers the set too
    # 11 px -> 15.4 -> (93, 108); grown to 32 about 100.5: round(84.5) = 84
    assert expand_box(Box(95, 95, 106, 106), 256, 256, 1.4, 32,
                      1) == Box(84, 84, 116, 116)
    assert _roi(torch.zeros(256, 256, dtype=torch.bool), ref) == [[64, 64,
                                                                   128, 128]]
    assert expand_box(Box(0, 0, 4, 4), 256, 256, 1.4, 64, 1) == Box(
        0, 0, 64, 64)


def test_roi_empty_clipped_and_bad_args():
    empty = torch.zeros(64, 96, dtype=torch.bool)
    assert _roi(empty) == [[0, 0, 96, 64]]
    corner = empty.clone()
    corner[:10, 90:] = True
    assert _roi(corner) == [[64, 0, 96, 32]]
    with pytest.raises(ValueError, match='differ'):
        zoom_in_roi(empty[None, None], torch.zeros(1, 1, 64, 64), 32)
    with pytest.raises(ValueError, match='expand_ratio'):
        _roi(empty, expand_ratio=0)


def test_zoom_in_segmentor_uses_the_roi(repo_root):
    init_default_scope('mmseg')
    cfg = copy.deepcopy(
        Config.fromfile(osp.join(repo_root, DEBUG_CFG)).model)
    cfg.type = 'ClickSegmentorZoomIn'
    cfg.neck.depths = (1, 2, 3, 1)
    cfg.test_cfg.zoom_in_start_step = 2
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    inputs = torch.randn(1, 3, 128, 128)
    ref = torch.full((1, 1, 128, 128), 2, dtype=torch.uint8)
    ref[0, 0, 10:21, 10:21] = 4
    prev = torch.zeros(1, 1, 128, 128, dtype=torch.bool)
    prev[0, 0, 5:30, 5:40] = True
    with torch.no_grad():
        feats = model.extract_image_feats(inputs)
        roi = model.compute_roi(feats, ref, prev)
        assert roi.tolist() == [[0, 0, 64, 64]]
        zoomed = model.decode_clicks(feats, ref, prev_mask=prev)
        explicit = model.decode_clicks(feats, ref, roi=roi)
        plain = model.decode_clicks(feats, ref)
        early = model.decode_clicks(feats, ref, prev_mask=prev, step=1)
        late = model.decode_clicks(feats, ref, prev_mask=prev, step=2)
    torch.testing.assert_close(zoomed, explicit)
    torch.testing.assert_close(late, explicit)
    torch.testing.assert_close(early, plain)
    assert not torch.allclose(zoomed, plain)
