"""The fast path (the model deployed in place, cached image side) equals
the reference path (the modules' own ops, everything per click).

Small real InterFormer models with every constant parameter randomised
(BN statistics, biases, norm weights, layer scales, relative bias), so BN
folding, layer-scale folding and the attention are really exercised.
Masks are compared where the reference margin is above the 1e-4 logit
tolerance (a pixel whose two logits tie to 1e-4 may flip).
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interformer.apis import InterFormerPredictor
from interformer.apis.inference import init_model
from interformer.evaluation.metrics import iou
from interformer.interaction import next_click
from interformer.models.utils.fused_ops import onednn_available

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason='oneDNN CPU ops unavailable')

TOL = 1e-4
DEBUG_CFG = osp.join('configs', '_base_', 'models', 'interformer_debug.py')
# Light neck with refine blocks (the Tiny layout, shortened) and zoom-in
REFINE = dict(depths=(2, 2, 3, 2), refine_start=(1, 1, 2, 1))


@pytest.fixture(autouse=True)
def one_thread():
    """Correctness only: one thread keeps these tests quick on a shared
    machine (many small parallel regions are slow under contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if 'running_var' in name or 'gamma' in name:
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif 'relative_position_bias_table' in name:
                tensor.copy_(noise * 0.5)
            elif 'conv_seg' in name:
                tensor.copy_(noise * 0.1)
            elif tensor.dim() == 1:
                tensor.add_(noise * 0.1)
    return model


def _build(repo_root, seed=0, **model_overrides):
    torch.manual_seed(seed)
    options = {f'model.{k}': v for k, v in model_overrides.items()}
    model = init_model(osp.join(repo_root, DEBUG_CFG), cfg_options=options)
    return _randomise(model, seed + 1)


def _scene(height=90, width=140):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    gt = ((((yy - 45) / 30.)**2 + ((xx - 60) / 40.)**2) < 1).astype(np.int8)
    return image, gt


def _compare_paths(model, steps=6, precision='fp32'):
    image, gt = _scene()
    ref = InterFormerPredictor(model, path='reference')
    fast = InterFormerPredictor(model, path='fast', precision=precision)
    ref.set_image(image)
    fast.set_image(image)
    deployed = fast.deploy_report.deployed
    assert 'backbone' in deployed and 'neck' in deployed
    assert 'decode_head' in deployed and not fast.deploy_report.skipped
    feat_tol = TOL if precision == 'fp32' else 0.2
    for a, b in zip(ref.features, fast.features):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, atol=feat_tol, rtol=0)
    rng = np.random.default_rng(0)
    clicks, pred = [], np.zeros(gt.shape, bool)
    worst, flips = 0.0, 0
    for step in range(steps):
        click = next_click(gt, pred, clicks, 'official', rng)
        clicks.append(click)
        for p in (ref, fast):
            p.add_click(click.y, click.x, click.is_positive)
        out_ref, out_fast = ref.predict(), fast.predict()
        label = ref.reference_label()
        # teacher-forced logits on the same reference label
        logits_ref = ref.decode_logits(label, step=step)
        logits_fast = fast.decode_logits(label, step=step)
        worst = max(worst, float((logits_ref - logits_fast).abs().max()))
        margin = ref.decode_logits(label)[0, 1] - ref.decode_logits(label)[0,
                                                                           0]
        sure = np.abs(
            torch.nn.functional.interpolate(
                margin[None, None], size=ref.canvas_shape,
                mode='bilinear')[0,
                                 0, :gt.shape[0], :gt.shape[1]].numpy()) > TOL
        differ = out_ref.mask != out_fast.mask
        flips += int(differ.sum())
        if precision == 'fp32':
            assert not differ[sure].any(), f'step {step}'
            np.testing.assert_allclose(out_fast.prob, out_ref.prob, atol=TOL)
            assert np.array_equal(fast.reference_label(), label)
        pred = out_ref.mask
        assert 0.0 <= iou(gt, pred) <= 1.0
    return worst, flips


def test_fast_equals_reference_light_layout(repo_root):
    worst, flips = _compare_paths(_build(repo_root))
    assert worst <= TOL
    assert flips == 0


def test_fast_equals_reference_with_refine_blocks_and_zoom_in(repo_root):
    model = _build(repo_root, seed=5, neck=REFINE, type='ClickSegmentorZoomIn')
    assert len(model.neck.refine_stages[2].blocks) == 1
    worst, flips = _compare_paths(model)
    assert worst <= TOL
    assert flips == 0


def test_bf16_path_stays_close(repo_root):
    model = _build(repo_root, seed=7)
    worst, flips = _compare_paths(model, steps=4, precision='bf16')
    # bfloat16 keeps ~3 significant digits; logits here reach ~10
    assert 0 < worst < 0.5
    assert flips < 0.02 * 90 * 140 * 4


def test_hooks_make_the_predictor_run_the_modules(repo_root):
    model = _build(repo_root)
    fast = InterFormerPredictor(model, path='fast')
    seen = []
    handle = model.decode_head.register_forward_hook(lambda *_: seen.append(1))
    try:
        image, _ = _scene()
        fast.set_image(image)
        fast.add_click(40, 60, True)
        fast.predict()
    finally:
        handle.remove()
    assert seen == [1]


def test_hooks_added_between_clicks_are_seen(repo_root):
    """The per-click hook check keeps a module list; a hook registered on
    a nested module after the first click still switches to the modules,
    and removing it switches back."""
    model = _build(repo_root)
    fast = InterFormerPredictor(model, path='fast')
    image, _ = _scene()
    fast.set_image(image)
    fast.add_click(40, 60, True)
    fast.predict()
    seen = []
    nested = list(model.neck.modules())[-1]
    handle = nested.register_forward_pre_hook(lambda *_: seen.append(1))
    fast.add_click(20, 30, False)
    fast.predict()
    assert len(seen) == 1
    handle.remove()
    fast.add_click(50, 70, True)
    fast.predict()
    assert len(seen) == 1


def test_unknown_path_is_rejected_and_new_weights_are_picked_up(repo_root):
    model = _build(repo_root)
    with pytest.raises(ValueError, match='path'):
        InterFormerPredictor(model, path='turbo')
    fast = InterFormerPredictor(model, path='fast')
    image, _ = _scene()
    fast.set_image(image)
    fast.add_click(40, 60, True)
    before = fast.predict().prob
    with torch.no_grad():  # e.g. a checkpoint loaded after construction
        model.decode_head.conv_seg.bias[1] += 5.0
    fast.redeploy()  # the documented call after editing weights
    fast.set_image(image)
    fast.add_click(40, 60, True)
    after = fast.predict().prob
    assert after.mean() > 2 * before.mean()
    ref = InterFormerPredictor(model, path='reference')
    ref.set_image(image)
    ref.add_click(40, 60, True)
    np.testing.assert_allclose(after, ref.predict().prob, atol=TOL)


def test_segmentor_accepts_cached_key_values(repo_root):
    model = _build(repo_root, seed=5, neck=REFINE, type='ClickSegmentorZoomIn')
    image, _ = _scene(96, 128)
    ref = InterFormerPredictor(model, path='reference')
    ref.set_image(image)
    label = np.full(ref.canvas_shape, 2, np.uint8)
    label[40:50, 60:70] = 4
    label_t = torch.from_numpy(label)[None, None]
    prev = torch.zeros_like(label_t, dtype=torch.bool)
    prev[..., 30:60, 50:90] = True
    with torch.inference_mode():
        kv = model.image_key_values(ref.features)
        cached = model.decode_clicks(
            ref.features, label_t, prev, step=2, key_values=kv)
        plain = model.decode_clicks(ref.features, label_t, prev, step=2)
    assert torch.equal(cached, plain)


@pytest.mark.parametrize('size, out', [((64, 96), (16, 24)),
                                       ((60, 90), (16, 24))])
def test_click_embedding_at_stride_4_equals_full_resolution(size, out):
    from interformer.models.necks.imsa.click_embedding import (
        embed_reference_label,
    )
    gen = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (2, *size), generator=gen, dtype=torch.uint8)
    table = torch.randn(5, 8, generator=gen)
    full = F.interpolate(
        F.embedding(label.long(), table).permute(0, 3, 1, 2),
        size=out,
        mode='bilinear',
        align_corners=False)
    fast = embed_reference_label(label, table, out)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=0)


def test_decode_logits_checks_its_label(repo_root):
    fast = InterFormerPredictor(_build(repo_root), path='fast')
    image, _ = _scene()
    fast.set_image(image)
    with pytest.raises(ValueError, match='canvas shape'):
        fast.decode_logits(np.zeros((10, 10), np.uint8))
    bad = np.full(fast.canvas_shape, 2, np.uint8)
    bad[0, 0] = 7
    with pytest.raises(ValueError, match='codes'):
        fast.decode_logits(bad)


def test_click_embedding_lookup_is_bitwise_the_four_tap_mean():
    from interformer.models.necks.imsa.click_embedding import (
        embed_reference_label,
    )
    gen = torch.Generator().manual_seed(1)
    label = torch.randint(0, 5, (1, 40, 56), generator=gen, dtype=torch.uint8)
    table = torch.randn(5, 16, generator=gen)

    def tap(row, col):
        return F.embedding(label[:, row::4, col::4].long(), table)

    direct = ((tap(1, 1) + tap(1, 2)) + (tap(2, 1) + tap(2, 2))) * 0.25
    fast = embed_reference_label(label, table, (10, 14))
    assert torch.equal(fast.permute(0, 2, 3, 1), direct)


def test_add_click_needs_a_real_bool(repo_root):
    fast = InterFormerPredictor(_build(repo_root), path='fast')
    image, _ = _scene()
    fast.set_image(image)
    for bad in ('no', 1, None):
        with pytest.raises(TypeError, match='positive'):
            fast.add_click(40, 60, bad)
    fast.add_click(40, 60, np.bool_(True))
    assert fast.clicks == [(40, 60, True)]
