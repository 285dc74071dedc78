"""The one click step: update -> disks -> decode -> foreground rule."""
import numpy as np
import pytest
import torch

from interformer.interaction import (
    REF_DEFINITE_BG,
    REF_DEFINITE_FG,
    REF_POSSIBLE_BG,
    REF_POSSIBLE_FG,
    REF_UNKNOWN,
    Click,
    advance_reference_label,
    click_step,
    fg_margin,
    foreground,
    foreground_from_logits,
    foreground_probability,
    new_reference_label,
    prediction_foreground,
    update_by_prediction,
)
from interformer.interaction.reference_label import _update_by_lookup


def _disk_decoder(calls):
    """Margin +1 inside positive disks, -1 elsewhere; records its inputs."""

    def decode(ref, prev_fg, step):
        calls.append((ref.copy() if isinstance(ref, np.ndarray) else
                      ref.clone(), prev_fg, step))
        return (ref == REF_DEFINITE_FG) * 2.0 - 1.0

    return decode


def test_step_order_and_single_image():
    calls = []
    ref0 = new_reference_label(16, 16)
    out = click_step(_disk_decoder(calls), ref0, None, Click(8, 8, True))
    assert (ref0 == REF_UNKNOWN).all()  # input untouched
    assert out.ref_label[8, 8] == REF_DEFINITE_FG
    assert calls[0][1] is None and calls[0][2] == 0
    assert out.foreground.dtype == bool and out.foreground.sum() == 81
    # next step: the label is updated by the previous foreground first
    out2 = click_step(_disk_decoder(calls), out.ref_label, out.foreground,
                      (0, 0, False), step=1)
    assert out2.ref_label[0, 0] == REF_DEFINITE_BG
    assert out2.ref_label[15, 15] == REF_POSSIBLE_BG
    assert calls[1][2] == 1 and calls[1][1].sum() == 81
    # no click: update only
    out3 = click_step(_disk_decoder(calls), out2.ref_label, out2.foreground,
                      None, step=2)
    np.testing.assert_array_equal(
        out3.ref_label, update_by_prediction(out2.ref_label,
                                             out2.foreground))


def test_batch_equals_per_sample_and_torch_equals_numpy():
    ref = np.full((3, 20, 24), REF_UNKNOWN, np.uint8)
    prev = np.zeros((3, 20, 24), bool)
    prev[:, 5:15, 5:15] = True
    clicks = [Click(10, 10, True), None, (2, 3, False)]
    batch = click_step(_disk_decoder([]), ref, prev, clicks, pred_thr=0.49)
    for i in range(3):
        one = click_step(_disk_decoder([]), ref[i], prev[i], clicks[i],
                         pred_thr=0.49)
        np.testing.assert_array_equal(batch.ref_label[i], one.ref_label)
        np.testing.assert_array_equal(batch.foreground[i], one.foreground)
    as_torch = click_step(_disk_decoder([]), torch.from_numpy(ref),
                          torch.from_numpy(prev), clicks)
    assert isinstance(as_torch.foreground, torch.Tensor)
    np.testing.assert_array_equal(as_torch.ref_label.numpy(),
                                  batch.ref_label)
    np.testing.assert_array_equal(as_torch.foreground.numpy(),
                                  batch.foreground)
    assert batch.ref_label[1, 7, 7] == REF_POSSIBLE_FG


def test_bad_inputs_raise():
    ref = np.full((2, 8, 8), REF_UNKNOWN, np.uint8)
    with pytest.raises(ValueError, match='2 reference labels'):
        advance_reference_label(ref, None, [None])
    with pytest.raises(TypeError, match='Click'):
        advance_reference_label(ref[0], None, 'click')
    with pytest.raises(ValueError, match='margin of shape'):
        click_step(lambda r, p, s: np.zeros((8, 8)), ref, None, [None, None])


def test_foreground_rule_is_one_rule():
    margin = torch.tensor([[-1.0, -0.04, -0.0400, 0.0, 1e-30, 3.0]])
    assert foreground(margin).tolist() == [[False] * 4 + [True] * 2]
    prob = foreground_probability(margin)
    assert torch.equal(foreground(margin, 0.49), prob > 0.49)
    # the predictor's answer (mask = argmax, prob = sigmoid) gives the same
    answer = type('Answer', (), dict(mask=foreground(margin).numpy(),
                                     prob=prob.numpy()))
    for thr in (None, 0.49, 0.5):
        np.testing.assert_array_equal(
            prediction_foreground(answer, thr),
            foreground(margin, thr).numpy())
    # numpy margins (the torch-free predictor) use numpy's exp: within an
    # ulp of torch's sigmoid, and the rule is one rule on either type
    prob_np = foreground_probability(margin.numpy())
    assert prob_np.dtype == np.float32
    np.testing.assert_allclose(prob_np, prob.numpy(), rtol=3e-7, atol=0)
    for thr in (None, 0.49, 0.5):
        np.testing.assert_array_equal(
            foreground(margin.numpy(), thr),
            prediction_foreground(
                type('Answer', (), dict(mask=margin.numpy() > 0,
                                        prob=prob_np)), thr))
    assert foreground_probability(np.float32([-200.0, 200.0])).tolist() \
        == [0.0, 1.0]
    logits = torch.randn(2, 2, 5, 5)
    assert torch.equal(foreground(fg_margin(logits)),
                       logits.argmax(1) == 1)
    assert torch.equal(foreground_from_logits(logits), logits.argmax(1) == 1)
    with pytest.raises(ValueError, match='B, 2, H, W'):
        fg_margin(torch.zeros(1, 3, 2, 2))


def test_lookup_update_equals_the_rule():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 5, (2, 33, 17)).astype(np.uint8)
    pred = rng.random((2, 33, 17)) > 0.5
    np.testing.assert_array_equal(
        _update_by_lookup(ref, pred),
        update_by_prediction(torch.from_numpy(ref),
                             torch.from_numpy(pred)).numpy())
    with pytest.raises(ValueError, match='codes'):
        update_by_prediction(ref + 5, pred)
