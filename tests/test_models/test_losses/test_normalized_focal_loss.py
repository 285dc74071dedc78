"""NormalizedFocalLoss against hand-computed values."""
import math

import pytest
import torch
from mmseg.registry import MODELS

from interformer.models.losses import NormalizedFocalLoss


def _two_class(fg_logits):
    """(B, H, W) foreground margins -> (B, 2, H, W) logits with l_bg = 1."""
    fg = torch.as_tensor(fg_logits, dtype=torch.float32)
    return torch.stack([torch.ones_like(fg), fg + 1.], dim=1)


def _sig(z):
    return 1. / (1. + math.exp(-z))


def test_hand_computed_single_image():
    # margins z = 0, 2, -1 with labels fg, bg, ignore.
    logits = _two_class([[[0., 2., -1.]]])
    label = torch.tensor([[[1, 0, 255]]])
    p_t = [0.5, 1. - _sig(2.)]
    beta = [(1. - p) ** 2 for p in p_t]
    scale = 2. / sum(beta)
    expected = sum(-0.5 * b * scale * math.log(p)
                   for b, p in zip(beta, p_t)) / 2.
    loss = NormalizedFocalLoss()(logits, label)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(0.88875, abs=1e-4)


def test_batch_mean_weight_and_alpha():
    logits = _two_class([[[0., 0.]], [[3., -3.]]])
    label = torch.tensor([[[1, 1]], [[255, 255]]])
    loss_fn = NormalizedFocalLoss(alpha=0.25, loss_weight=0.4)
    # Image 1: p_t = 0.5 twice -> factor normalised to 1 each:
    # -0.25 * log(0.5); image 2 has no valid pixel -> 0; mean of the two.
    expected = 0.4 * (-0.25 * math.log(0.5)) / 2.
    assert loss_fn(logits, label).item() == pytest.approx(expected, rel=1e-6)
    # A single object logit channel is the margin itself.
    single = torch.zeros(1, 1, 1, 2)
    assert loss_fn(single, label[:1]).item() == pytest.approx(
        2 * expected, rel=1e-6)


def test_normaliser_is_detached_and_gradient_finite():
    logits = _two_class([[[0.3, -4., 20., -30.]]]).requires_grad_()
    label = torch.tensor([[[1, 0, 1, 1]]])
    loss = NormalizedFocalLoss()(logits, label)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # With a detached normaliser the gradient of pixel i only involves its
    # own (scaled) focal term; the easiest pixel (z=20) gets ~no gradient.
    assert logits.grad[0, 1, 0, 2].abs() < 1e-6
    assert logits.grad[0, 1, 0, 3] < 0  # hard fg pixel pushed up


def test_mmseg_interface_and_ignore_override():
    loss_fn = MODELS.build(dict(type='NormalizedFocalLoss', loss_weight=2.))
    assert loss_fn.loss_name == 'loss_nfl'
    logits = _two_class([[[1., -1.]]])
    label = torch.tensor([[[1, 7]]])
    with pytest.raises(ValueError, match='labels must be'):
        loss_fn(logits, label)
    # ignore_index passed by the head takes precedence.
    out = loss_fn(logits, label, weight=None, ignore_index=7)
    expected = 2. * -0.5 * math.log(_sig(1.))
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_bad_args_raise():
    with pytest.raises(ValueError, match='alpha'):
        NormalizedFocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match='gamma'):
        NormalizedFocalLoss(gamma=-1)
    with pytest.raises(ValueError, match='cls_score'):
        NormalizedFocalLoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match='label shape'):
        NormalizedFocalLoss()(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2))
