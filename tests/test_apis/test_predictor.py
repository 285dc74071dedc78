"""InterFormerPredictor on a stand-in segmentor (call counting, state rules).

The real segmentor is exercised in tests/test_apis/test_predictor_model.py.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interformer.apis import InterFormerPredictor
from interformer.interaction import (
    REF_DEFINITE_BG,
    REF_DEFINITE_FG,
    REF_POSSIBLE_BG,
    REF_POSSIBLE_FG,
    REF_UNKNOWN,
)


class DiskSegmentor(torch.nn.Module):
    """Predicts foreground exactly where the reference label is >= 3.

    Counts encoder and decoder calls and records the labels it was fed.
    """

    def __init__(self):
        super().__init__()
        self.encode_calls = 0
        self.decode_calls = 0
        self.fed_labels = []

    def extract_image_feats(self, inputs):
        self.encode_calls += 1
        self.last_input = inputs.clone()
        b, _, h, w = inputs.shape
        return [inputs.new_zeros(b, 32, h // 4, w // 4)]

    def decode_clicks(self, feats, ref_label, prev_mask=None, roi=None):
        self.decode_calls += 1
        self.fed_labels.append(ref_label[0, 0].numpy().copy())
        fg = (ref_label >= REF_POSSIBLE_FG).float()
        logits = torch.cat([-(fg * 2 - 1), fg * 2 - 1], dim=1) * 4
        return F.avg_pool2d(logits, 4)

    def upsample_logits(self, logits, size):
        return F.interpolate(logits, size=size, mode='nearest')


@pytest.fixture
def predictor():
    pred = InterFormerPredictor(DiskSegmentor())
    image = np.random.default_rng(0).integers(
        0, 255, (50, 70, 3), dtype=np.uint8)
    pred.set_image(image)
    return pred


def test_encoder_runs_once_and_canvas_is_padded(predictor):
    model = predictor.model
    assert predictor.image_shape == (50, 70)
    assert predictor.canvas_shape == (64, 96)
    # normalised with ImageNet mean/std, zero padding after normalisation
    x = model.last_input[0]
    assert x.shape == (3, 64, 96)
    assert torch.all(x[:, 50:, :] == 0) and torch.all(x[:, :, 70:] == 0)
    for k in range(5):
        predictor.add_click(10 + k, 10 + k * 5, k % 2 == 0)
        predictor.predict()
    assert model.encode_calls == 1
    assert model.decode_calls == 5


def test_reference_label_follows_official_order(predictor):
    model = predictor.model
    predictor.add_click(20, 20, True)
    first = predictor.predict()
    fed = model.fed_labels[0]
    assert fed[20, 20] == REF_DEFINITE_FG
    assert (fed == REF_DEFINITE_FG).sum() == 81
    assert set(np.unique(fed)) == {REF_UNKNOWN, REF_DEFINITE_FG}
    # the first prediction covers the stride-4 cells touched by the disk
    assert first.mask[20, 20] and not first.mask[45, 60]
    predictor.add_click(45, 60, False)
    predictor.predict()
    fed = model.fed_labels[1]
    # update by the previous prediction, then the new disk on top
    assert fed[45, 60] == REF_DEFINITE_BG
    assert fed[20, 20] == REF_DEFINITE_FG
    assert fed[5, 5] == REF_POSSIBLE_BG
    expected_fg = first.mask & (model.fed_labels[0][:50, :70] == REF_UNKNOWN)
    assert np.all(fed[:50, :70][expected_fg] == REF_POSSIBLE_FG)


def test_lazy_evaluation_matches_stepwise(predictor):
    clicks = [(10, 10, True), (30, 40, True), (45, 5, False)]
    for y, x, p in clicks:
        predictor.add_click(y, x, p)
        predictor.predict()
    stepwise = predictor.predict()
    labels_stepwise = [lab.copy() for lab in predictor.model.fed_labels]
    predictor.reset()
    predictor.model.fed_labels.clear()
    for y, x, p in clicks:
        predictor.add_click(y, x, p)
    batched = predictor.predict()  # evaluates the three pending clicks
    assert np.array_equal(stepwise.mask, batched.mask)
    for a, b in zip(labels_stepwise, predictor.model.fed_labels):
        assert np.array_equal(a, b)


def test_undo_restores_previous_answer(predictor):
    predictor.add_click(10, 10, True)
    one = predictor.predict()
    predictor.add_click(40, 60, True)
    two = predictor.predict()
    assert not np.array_equal(one.mask, two.mask)
    calls = predictor.model.decode_calls
    assert predictor.undo()
    again = predictor.predict()
    assert np.array_equal(again.mask, one.mask)
    assert predictor.model.decode_calls == calls  # no recomputation
    assert predictor.undo() and not predictor.undo()
    assert not predictor.predict().mask.any()


def test_shapes_and_canvas(predictor):
    predictor.add_click(49, 69, True)
    out = predictor.predict()
    assert out.mask.shape == (50, 70) and out.mask.dtype == bool
    assert out.prob.shape == (50, 70) and out.prob.dtype == np.float32
    assert np.all((out.prob >= 0) & (out.prob <= 1))
    canvas = predictor.predict(on_canvas=True)
    assert canvas.mask.shape == (64, 96)
    predictor.add_click(60, 90, False, on_canvas=True)
    assert predictor.predict(on_canvas=True).mask.shape == (64, 96)


def test_clear_errors():
    pred = InterFormerPredictor(DiskSegmentor())
    with pytest.raises(RuntimeError, match='set_image'):
        pred.add_click(1, 1, True)
    with pytest.raises(RuntimeError, match='set_image'):
        pred.predict()
    with pytest.raises(ValueError, match='uint8'):
        pred.set_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        pred.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(TypeError, match='numpy'):
        pred.set_image([[0]])
    pred.set_image(np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(ValueError, match='outside the 10x12 image'):
        pred.add_click(10, 3, True)
    with pytest.raises(ValueError, match='outside'):
        pred.add_click(-1, 3, True)
    with pytest.raises(TypeError, match='integers'):
        pred.add_click(1.5, 3, True)
    with pytest.raises(ValueError, match='precision'):
        InterFormerPredictor(DiskSegmentor(), precision='fp8')


def test_step_without_click_decodes_updated_label(predictor):
    model = predictor.model
    predictor.add_click(20, 20, True)
    predictor.predict()
    fresh = InterFormerPredictor(DiskSegmentor())
    fresh.set_image(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(RuntimeError, match='at least one click'):
        fresh.step_without_click()
    predictor.step_without_click()
    predictor.predict()
    assert model.decode_calls == 2
    first, second = model.fed_labels
    # no new disk: the label is the first one updated by its prediction
    assert (second == REF_DEFINITE_FG).sum() == 81
    assert (second == REF_POSSIBLE_FG).sum() > 0
    assert not (first == REF_POSSIBLE_FG).any()
    assert predictor.clicks == [(20, 20, True)]
    assert predictor.undo()  # removes the click-less step
    assert predictor.clicks == [(20, 20, True)]
