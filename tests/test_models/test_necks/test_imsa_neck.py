"""The registered IMSA neck: shapes, keys, K/V split, ROI path, bad input."""
import pytest
import torch
from mmseg.registry import MODELS

from interformer.models.necks.imsa import IMSA, run_blocks_in_roi
from interformer.models.necks.imsa.zoom_in import normalize_rois, roi_to_window

CHANNELS = (8, 16, 32, 64)


def _neck(depths=(2, 1, 3, 2), refine_start=(1, 1, 2, 1)):
    torch.manual_seed(0)
    neck = MODELS.build(
        dict(
            type='IMSA',
            target_size=(64, 64),
            in_channels=CHANNELS,
            num_heads=(1, 1, 2, 2),
            depths=depths,
            refine_start=refine_start,
            mlp_ratio=(2, 2, 2, 2)))
    neck.init_weights()
    return neck.eval()


def _inputs(batch=2, height=64, width=96):
    feats = [
        torch.randn(batch, c, height // s, width // s)
        for c, s in zip(CHANNELS, (4, 8, 16, 32))
    ]
    ref = torch.randint(0, 5, (batch, 1, height, width), dtype=torch.uint8)
    return feats, ref


def test_output_shapes_and_official_key_layout():
    neck = _neck()
    feats, ref = _inputs()
    with torch.no_grad():
        outs = neck(feats, ref)
    assert [tuple(o.shape) for o in outs] == [tuple(f.shape) for f in feats]
    keys = set(neck.state_dict())
    assert neck.patch_embed.shape == (5, 8)
    assert 'stages.0.blocks.0.attn.dconvs.3.bias' in keys
    assert 'stages.2.blocks.1.mlp.4.weight' in keys
    assert 'stages.2.downsample.reduction.weight' in keys
    assert 'stages.2.downsample.reduction.bias' not in keys
    assert not any(k.startswith('stages.3.downsample') for k in keys)
    assert 'refine_stages.0.blocks.0.norm_kv.weight' in keys
    assert 'refine_stages.2.blocks.0.attn.query_proj.weight' in keys
    assert 'refine_stages.1.blocks.0.norm1.weight' not in keys
    assert {f'norm{i}.weight' for i in range(4)} <= keys


def test_clicks_change_the_output_and_kv_split_is_exact():
    neck = _neck()
    feats, ref = _inputs()
    with torch.no_grad():
        outs = neck(feats, ref)
        cached = neck(feats, ref, key_values=neck.image_key_values(feats))
        other = neck(feats, torch.full_like(ref, 2))
    for a, b in zip(outs, cached):
        assert torch.equal(a, b)
    assert not torch.allclose(outs[0], other[0])


def test_multiple_objects_repeat_the_image():
    neck = _neck()
    feats, ref = _inputs(batch=1)
    ref2 = torch.cat([ref, torch.full_like(ref, 2)], dim=1)
    with torch.no_grad():
        both = neck(feats, ref2)
        first = neck(feats, ref)
    assert both[0].shape[0] == 2
    torch.testing.assert_close(both[3][:1], first[3])


def test_full_image_roi_equals_no_roi_and_crop_is_local():
    neck = _neck()
    feats, ref = _inputs(batch=2)
    with torch.no_grad():
        plain = neck(feats, ref)
        full = neck(feats, ref, roi=torch.tensor([0, 0, 96, 64]))
        zoom = neck(feats, ref, roi=[[32, 0, 96, 64], [0, 32, 64, 64]])
    for a, b in zip(plain, full):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(plain[2], zoom[2])
    # Coarse outputs of stages without refine blocks are untouched.
    torch.testing.assert_close(plain[1], zoom[1])

    blocks = neck.refine_stages[2].blocks
    x = torch.randn(2, 32, 4, 6)
    with torch.no_grad():
        out = run_blocks_in_roi(blocks, x, [[32, 0, 96, 64]] * 2, 16)
        crop = x[:, :, 0:4, 2:6]
        for block in blocks:
            crop = block(crop)
    assert torch.equal(out[:, :, :, :2], x[:, :, :, :2])
    torch.testing.assert_close(out[:, :, :, 2:], crop)


def test_roi_helpers():
    assert normalize_rois(torch.tensor([0, 0, 32, 64]), 2) == [(0, 0, 32, 64)
                                                              ] * 2
    assert roi_to_window((32, 0, 96, 64), 16, 4, 6) == (2, 0, 6, 4)
    assert roi_to_window((5, 0, 37, 64), 32, 2, 3) == (0, 0, 2, 2)
    with pytest.raises(ValueError, match='empty'):
        normalize_rois([10, 0, 10, 5], 1)
    with pytest.raises(ValueError, match='shape'):
        normalize_rois([1, 2, 3], 1)
    with pytest.raises(ValueError, match='batch'):
        normalize_rois([[0, 0, 4, 4]] * 3, 2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='refine_start'):
        IMSA(depths=(1, 1, 2, 1), refine_start=(0, 1, 2, 1))
    with pytest.raises(ValueError, match='depths needs 4'):
        IMSA(depths=(1, 1, 2))
    neck = _neck()
    feats, ref = _inputs()
    with pytest.raises(ValueError, match='4 image features'):
        neck(feats[:3], ref)
    with pytest.raises(ValueError, match='image feature 1'):
        neck([feats[0], feats[0], feats[2], feats[3]], ref)
    with pytest.raises(ValueError, match='codes'):
        neck(feats, torch.full_like(ref, 5))
    with pytest.raises(ValueError, match='integer'):
        neck(feats, ref.float())
    with pytest.raises(ValueError, match='batch'):
        neck(feats, ref[:1])
    with pytest.raises(ValueError, match=r'\(B, N, H, W\)'):
        neck(feats, ref[:, 0])
