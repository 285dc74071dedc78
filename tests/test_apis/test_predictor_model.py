"""InterFormerPredictor on real segmentors: official parity through the
predictor path, and the debug config built from its file."""
import glob
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch

from interformer.apis import InterFormerPredictor
from interformer.interaction import REF_DEFINITE_FG

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(_REPO, 'tests', 'test_models'))
from parity_utils import build_from_fixture, load_fixture  # noqa: E402

_REF_DIR = os.environ.get(
    'INTERFORMER_REFERENCE_DIR',
    osp.join(osp.dirname(_REPO), 'shared', 'reference'))
FIXTURES = sorted(glob.glob(osp.join(_REF_DIR, '*.npz')))
MEAN = np.array([123.675, 116.28, 103.53], np.float64)
STD = np.array([58.395, 57.12, 57.375], np.float64)


def _image_from_fixture(arrays) -> np.ndarray:
    """The RGB uint8 image: stored, or recovered from the normalised input."""
    if 'image_rgb_uint8' in arrays:
        return arrays['image_rgb_uint8']
    h, w = arrays['img_shape'].tolist()
    x = arrays['input'][:, :h, :w].astype(np.float64)
    rgb = x.transpose(1, 2, 0) * STD + MEAN
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


@pytest.mark.parametrize('path', FIXTURES or [None],
                         ids=[osp.basename(p) for p in FIXTURES] or ['none'])
def test_predictor_reproduces_official_click_run(path):
    if path is None:
        pytest.skip(f'no parity fixtures (*.npz) in {_REF_DIR}')
    arrays = load_fixture(path)
    model = build_from_fixture(arrays, _REPO)
    predictor = InterFormerPredictor(model)
    image = _image_from_fixture(arrays)
    predictor.set_image(image)
    assert predictor.canvas_shape == tuple(arrays['pad_shape'].tolist())
    for i, feat in enumerate(predictor.features):
        torch.testing.assert_close(
            feat[0], torch.from_numpy(arrays[f'fpn_{i}']),
            atol=1e-4, rtol=1e-4)
    # free-running replay of the official clicks through the public API
    flipped = np.zeros(predictor.canvas_shape, bool)
    for step, (y, x, positive) in enumerate(arrays['clicks'].tolist()):
        predictor.add_click(y, x, bool(positive), on_canvas=True)
        out = predictor.predict(on_canvas=True)
        ref = predictor.reference_label()
        assert np.array_equal(ref[~flipped],
                              arrays['ref_label'][step][~flipped])
        logits = arrays['logits_up'][step]
        margin = np.abs(logits[1] - logits[0])
        stored = arrays['pred'][step].astype(bool)
        sure = margin >= 1e-3
        assert np.array_equal(out.mask[sure], stored[sure]), f'step {step}'
        # probability is the softmax of the official logits
        expected_prob = 1 / (1 + np.exp(-(logits[1] - logits[0])))
        np.testing.assert_allclose(out.prob, expected_prob, atol=1e-4)
        flipped |= out.mask != stored
    assert flipped.sum() <= 2 * len(arrays['clicks'])


@pytest.fixture(scope='module')
def debug_predictor(repo_root):
    torch.manual_seed(0)
    cfg = osp.join(repo_root, 'configs', '_base_', 'models',
                   'interformer_debug.py')
    return InterFormerPredictor(cfg)


def test_debug_config_encodes_once_per_image(debug_predictor):
    model = debug_predictor.model
    calls = dict(backbone=0)

    def count(*_):
        calls['backbone'] += 1

    handle = model.backbone.register_forward_hook(count)
    try:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
        debug_predictor.set_image(image)
        for k in range(20):
            debug_predictor.add_click(int(rng.integers(70)),
                                      int(rng.integers(90)), k % 3 != 2)
            out = debug_predictor.predict()
        debug_predictor.reset()  # next object on the same image
        debug_predictor.add_click(35, 45, True)
        debug_predictor.predict()
    finally:
        handle.remove()
    assert calls['backbone'] == 1
    assert out.mask.shape == (70, 90)
    assert debug_predictor.reference_label()[35, 45] == REF_DEFINITE_FG


def test_bad_checkpoint_is_reported(tmp_path, repo_root):
    cfg = osp.join(repo_root, 'configs', '_base_', 'models',
                   'interformer_debug.py')
    truncated = tmp_path / 'truncated.pth'
    torch.save({'state_dict': {'a': torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='truncated.pth'):
        InterFormerPredictor(cfg, str(truncated))
    wrong = tmp_path / 'wrong.pth'
    torch.save({'state_dict': {'a': torch.zeros(3)}}, wrong)
    with pytest.raises(KeyError, match='missing keys'):
        InterFormerPredictor(cfg, str(wrong))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        InterFormerPredictor(cfg, str(tmp_path / 'nope.pth'))
