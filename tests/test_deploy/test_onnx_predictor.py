"""OnnxPredictor (issue 15, part 2): imported and run with torch blocked,
same masks as InterFormerPredictor, same errors, store features checked."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from deploy_utils import BLOCK_TORCH, REPO, build_tiny

from interformer.apis import InterFormerPredictor
from interformer.deploy import OnnxPredictor
from interformer.deploy.export import export_onnx

CLICKS = [(40, 60, True), (10, 100, False), (70, 20, True), (55, 64, False)]
PROB_TOL = 1e-4

TORCH_FREE_RUN = BLOCK_TORCH + textwrap.dedent('''
    import numpy as np
    from interformer.deploy import OnnxPredictor

    model_dir, image_path, out_path = sys.argv[1:4]
    predictor = OnnxPredictor(model_dir, num_threads=1)
    try:
        predictor.predict()
    except RuntimeError as err:
        no_image = str(err)
    image = np.load(image_path)
    predictor.set_image(image)
    try:
        predictor.add_click(image.shape[0], 0, True)
    except ValueError as err:
        outside = str(err)
    try:
        predictor.add_click(0, 0, 'no')
    except TypeError as err:
        not_bool = str(err)
    masks, probs = [], []
    for y, x, positive in CLICKS_HERE:
        predictor.add_click(y, x, positive)
        result = predictor.predict()
        masks.append(result.mask)
        probs.append(result.prob)
    assert predictor.undo() and len(predictor.clicks) == len(CLICKS_HERE) - 1
    assert 'torch' not in sys.modules, 'torch was imported'
    np.savez(out_path, masks=np.stack(masks), probs=np.stack(probs),
             no_image=no_image, outside=outside, not_bool=not_bool)
''')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    model = build_tiny('light', seed=1)
    out = tmp_path_factory.mktemp('onnx_predictor')
    export_onnx(model, str(out))
    return model, str(out)


def _image(height=90, width=130, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    image[20:65, 30:90] += 150  # a bright object
    return image


def test_torch_free_predictor_matches_pytorch(exported, tmp_path):
    model, model_dir = exported
    image = _image()
    np.save(tmp_path / 'image.npy', image)
    script = TORCH_FREE_RUN.replace('CLICKS_HERE', repr(CLICKS))
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, '-c', script, model_dir,
         str(tmp_path / 'image.npy'), str(tmp_path / 'out.npz')],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / 'out.npz')

    torch_predictor = InterFormerPredictor(model)
    with pytest.raises(RuntimeError) as no_image:
        torch_predictor.predict()
    assert str(got['no_image']) == str(no_image.value)
    torch_predictor.set_image(image)
    with pytest.raises(ValueError) as outside:
        torch_predictor.add_click(image.shape[0], 0, True)
    assert str(got['outside']) == str(outside.value)
    with pytest.raises(TypeError) as not_bool:
        torch_predictor.add_click(0, 0, 'no')
    assert str(got['not_bool']) == str(not_bool.value)
    for step, (y, x, positive) in enumerate(CLICKS):
        torch_predictor.add_click(y, x, positive)
        want = torch_predictor.predict()
        np.testing.assert_allclose(got['probs'][step], want.prob,
                                   atol=PROB_TOL)
        sure = np.abs(want.prob - 0.5) > PROB_TOL
        assert np.array_equal(got['masks'][step][sure], want.mask[sure])
    assert 0 < got['masks'][-1].sum() < got['masks'][-1].size


def test_features_from_store_and_from_another_model(exported, tmp_path):
    model, model_dir = exported
    image = _image(64, 96, seed=2)
    predictor = OnnxPredictor(model_dir, num_threads=1)
    features = predictor.encode(image)
    predictor.set_image(image, features=features)
    predictor.add_click(30, 40, True)
    first = predictor.predict()
    predictor.set_image(image)
    predictor.add_click(30, 40, True)
    assert np.array_equal(predictor.predict().mask, first.mask)

    other = build_tiny('light', seed=2)
    other_dir = str(tmp_path / 'other')
    export_onnx(other, other_dir)
    with pytest.raises(ValueError, match='another model'):
        OnnxPredictor(other_dir).set_image(image, features=features)
    with pytest.raises(ValueError, match='another image'):
        predictor.set_image(_image(64, 96, seed=3), features=features)


def test_missing_export_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='model.json'):
        OnnxPredictor(str(tmp_path))
    assert not osp.exists(tmp_path / 'model.json')
