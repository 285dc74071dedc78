"""ONNX export (issue 15, part 1): onnxruntime vs PyTorch at two canvases,
the dynamic-shape ops against PyTorch's, clear errors for what is not
supported."""
import json
import os.path as osp

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from deploy_utils import STRUCTURES, build_tiny, random_ref_label

from interformer.deploy import dynamic_ops as ops
from interformer.deploy.export import export_onnx, weights_sha256
from interformer.deploy.graphs import ExportError, decoder_input_names
from interformer.models.necks.imsa.attention import pooled_grid_size

CANVASES = ((96, 128), (224, 160))
TOL = 1e-4


@pytest.fixture(scope='module', params=STRUCTURES)
def exported(request, tmp_path_factory):
    model = build_tiny(request.param)
    out = tmp_path_factory.mktemp(f'onnx_{request.param}')
    paths = export_onnx(model, str(out))
    return model, paths


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


@pytest.mark.parametrize('canvas', CANVASES, ids=lambda c: f'{c[0]}x{c[1]}')
def test_onnxruntime_matches_pytorch(exported, canvas):
    model, paths = exported
    height, width = canvas
    image = torch.randn(1, 3, height, width,
                        generator=torch.Generator().manual_seed(height))
    ref = random_ref_label(height, width, seed=width)
    with torch.no_grad():
        feats = model.extract_image_feats(image)
        key_values = model.image_key_values(feats)
        logits = model.decode_clicks(feats, ref)
    enc = _session(paths['encoder'])
    names = [o.name for o in enc.get_outputs()]
    outs = dict(zip(names, enc.run(None, {'image': image.numpy()})))
    for i, feat in enumerate(feats):
        np.testing.assert_allclose(outs[f'feat{i}'], feat.numpy(),
                                   atol=TOL, rtol=TOL)
    for i, (key, value) in enumerate(key_values):
        np.testing.assert_allclose(outs[f'key{i}'], key.numpy(), atol=TOL,
                                   rtol=TOL)
        np.testing.assert_allclose(outs[f'value{i}'], value.numpy(),
                                   atol=TOL, rtol=TOL)
    dec = _session(paths['decoder'])
    feed = {n: outs[n] for n in decoder_input_names()[:-1]}
    feed['ref_label'] = ref.numpy()
    got = dec.run(['logits'], feed)[0]
    assert got.shape == (1, 2, height // 4, width // 4)
    np.testing.assert_allclose(got, logits.numpy(), atol=TOL, rtol=TOL)
    # the click label matters: another label gives other logits
    other = dec.run(['logits'], dict(feed, ref_label=np.full_like(
        feed['ref_label'], 4)))[0]
    assert np.abs(other - got).max() > 1e-2


def test_model_json(exported):
    model, paths = exported
    with open(paths['model_json']) as f:
        info = json.load(f)
    assert info['weights_sha256'] == weights_sha256(model)
    assert info['input']['size_divisor'] == 32
    assert info['reference_label']['click_radius'] == 5
    assert info['reference_label']['update_table'] == [
        0, 1, 1, 2, 4, 0, 2, 3, 3, 4]
    for key in ('encoder', 'decoder'):
        file = info['files'][key]
        assert file['bytes'] == osp.getsize(paths[key]) > 0


def test_fp16_interface(exported, tmp_path):
    model, _ = exported
    paths = export_onnx(model, str(tmp_path), fp16=True)
    enc, dec = _session(paths['encoder']), _session(paths['decoder'])
    image = torch.randn(1, 3, 128, 96)
    outs = dict(zip([o.name for o in enc.get_outputs()],
                    enc.run(None, {'image': image.numpy()})))
    assert all(v.dtype == np.float16 for v in outs.values())
    ref = random_ref_label(128, 96, seed=3)
    feed = {n: outs[n] for n in decoder_input_names()[:-1]}
    got = dec.run(['logits'], dict(feed, ref_label=ref.numpy()))[0]
    with torch.no_grad():
        want = model.decode_clicks(model.extract_image_feats(image), ref)
    scale = float(want.abs().max())
    assert np.abs(got - want.numpy()).max() < 1e-2 * max(scale, 1.0)


def test_model_deployed_in_place_exports_its_plain_route(exported, tmp_path):
    from interformer.models.deploy import deploy_model, revert_deploy
    model, _ = exported
    deploy_model(model, 'fp32')  # as the fast-path predictor leaves it
    try:
        paths = export_onnx(model, str(tmp_path))
    finally:
        revert_deploy(model)
    enc, dec = _session(paths['encoder']), _session(paths['decoder'])
    image = torch.randn(1, 3, 64, 96)
    outs = dict(zip([o.name for o in enc.get_outputs()],
                    enc.run(None, {'image': image.numpy()})))
    ref = random_ref_label(64, 96, seed=5)
    feed = {n: outs[n] for n in decoder_input_names()[:-1]}
    got = dec.run(['logits'], dict(feed, ref_label=ref.numpy()))[0]
    with torch.no_grad():
        want = model.decode_clicks(model.extract_image_feats(image), ref)
    np.testing.assert_allclose(got, want.numpy(), atol=TOL, rtol=TOL)


def test_zoom_in_variant_fails_clearly(exported, tmp_path):
    model, _ = exported
    zoom = type('ClickSegmentorZoomIn', (type(model), ), {})
    model.__class__ = zoom
    try:
        with pytest.raises(ExportError, match='zoom-in refine'):
            export_onnx(model, str(tmp_path))
    finally:
        model.__class__ = zoom.__bases__[0]


@pytest.mark.parametrize('size', [1, 5, 24, 43, 56, 100])
def test_dynamic_pools_match_pytorch(size):
    x = torch.randn(2, 3, size, size + 7)
    for ratio in (2, 3, 12, 24):
        for target in (8.0, 32.0, 128.0):
            ph = pooled_grid_size(size, target, ratio)
            pw = pooled_grid_size(size + 7, target, ratio)
            assert int(ops.pooled_grid_size(torch.tensor(size), target,
                                            ratio)) == ph
            got = ops.adaptive_max_pool2d(x, torch.tensor(ph),
                                          torch.tensor(pw))
            assert torch.equal(got, F.adaptive_max_pool2d(x, (ph, pw)))
            got = ops.adaptive_avg_pool2d(x, torch.tensor(ph),
                                          torch.tensor(pw))
            torch.testing.assert_close(got,
                                       F.adaptive_avg_pool2d(x, (ph, pw)))


@pytest.mark.parametrize('dst', [1, 7, 32, 45, 64, 100])
def test_nearest_index_matches_interpolate(dst):
    src = 32
    flat = torch.arange(src, dtype=torch.float32).view(1, 1, src)
    want = F.interpolate(flat, size=dst, mode='nearest').view(-1).long()
    assert torch.equal(ops.nearest_index(src, torch.tensor(dst)), want)


def test_weights_sha256_is_kept_until_a_weight_changes(monkeypatch):
    """The model identity is hashed once per weight state: a second ask
    (another predictor on the same model) hashes nothing, an in-place edit
    or a loaded state dict gives a new digest."""
    import hashlib

    import torch
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                torch.nn.BatchNorm2d(4))
    first = weights_sha256(model)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, 'sha256',
                        lambda *a: calls.append(1) or real(*a))
    assert weights_sha256(model) == first and not calls
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1
    edited = weights_sha256(model)
    assert edited != first and calls
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['1.running_mean'] += 1  # a buffer counts too
    model.load_state_dict(state)
    assert weights_sha256(model) not in (first, edited)
