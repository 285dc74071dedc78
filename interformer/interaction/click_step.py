"""One click step and the foreground rule, shared by every caller.

A click step is::

    reference label --update by the previous foreground--> --add the click
    disk(s)--> --decode--> foreground margin --foreground rule--> mask

:func:`click_step` is the only implementation; the predictors (through
:class:`~interformer.interaction.click_session.ClickSession`: the PyTorch
one, the onnxruntime one and the click test's test-time augmentation), the
service's batched object decoding (``interformer.serving.engine``) and
both routes of the training click simulation
(:mod:`~interformer.interaction.click_simulation`) call it. The robot
user that chooses the click (:func:`~interformer.interaction.clicks.
next_click`) stays outside: the predictor has none.

The decoder is a callable (:data:`DecodeFn`), so the step does not care
which route computes it (the model's neck + head, a deployed/compiled
route, a test-time-augmented ensemble, a stand-in):

    ``decode(ref_label, prev_fg, step) -> margin``

* ``ref_label``: (B, H, W) or (H, W) uint8 codes (numpy or torch, as given
  to :func:`click_step`), the label with the new disks;
* ``prev_fg``: the previous foreground, same shape, bool, or None at the
  first step (zoom-in models derive their ROI from it); for a batch given
  one mask per sample, a list of Optional (H, W) masks;
* ``step``: 0-based click index (an int, or one per sample for a batch of
  objects at different clicks, passed on as given);
* ``margin``: same shape, float: foreground minus background logit at the
  label's resolution (numpy or torch).

The foreground rule (:func:`foreground`) is decided here only: argmax of the
two logits (``margin > 0``, a tie goes to background) when ``pred_thr`` is
None (the model's own decision, used to update the reference label, and the
``official`` protocol), else ``sigmoid(margin) > pred_thr`` in float32 (RITM:
0.49). :func:`foreground_probability` is the probability the predictor
reports, so ``prediction_foreground(prediction, thr)`` on a predictor's
answer equals ``foreground(margin, thr)`` bit for bit.

Torch is optional: on numpy arrays everything here runs on numpy alone (the
onnxruntime predictor uses the same step without torch); tensors are
handled with torch, on their device, without a host read.
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import numpy as np

from .clicks import Click
from .reference_label import (
    CLICK_RADIUS,
    ClickBatch,
    _is_tensor,
    add_click_disk,
    add_click_disks,
    update_by_prediction,
)

if TYPE_CHECKING:  # torch is optional: numpy callers (OnnxPredictor) work
    import torch

__all__ = [
    'DecodeFn', 'StepResult', 'click_step', 'advance_reference_label',
    'fg_margin', 'foreground', 'foreground_probability',
    'foreground_from_logits', 'prediction_foreground'
]

ArrayLike = Union[np.ndarray, 'torch.Tensor']
ClickLike = Union[Click, Sequence]
Step = Union[int, Sequence[int]]
DecodeFn = Callable[[ArrayLike, Optional[ArrayLike], Step], ArrayLike]


@dataclass
class StepResult:
    """The outcome of one click step.

    Attributes:
        ref_label: (B, H, W) / (H, W) uint8 label that was decoded.
        margin: foreground margin returned by the decoder, same shape.
        foreground: bool mask of the same shape and array type as
            ``ref_label`` (the rule applied to ``margin``).
    """
    ref_label: ArrayLike
    margin: ArrayLike
    foreground: ArrayLike


# ------------------------------------------------------------ the rule
def fg_margin(logits: ArrayLike) -> ArrayLike:
    """(B, 2, H, W) logits (background, foreground) -> (B, H, W) margin.

    ``margin > 0`` is exactly ``logits[:, 1] > logits[:, 0]`` (IEEE
    subtraction of distinct finite floats is never 0), i.e. the argmax
    with a tie going to background.
    """
    if logits.ndim != 4 or logits.shape[1] != 2:
        raise ValueError(f'fg_margin: expected (B, 2, H, W) logits, got '
                         f'shape {tuple(logits.shape)}')
    return logits[:, 1] - logits[:, 0]


def foreground_probability(margin: ArrayLike) -> ArrayLike:
    """Softmax foreground probability of two logits = sigmoid(margin),
    float32 (numpy in, numpy out; tensor in, tensor out)."""
    if _is_tensor(margin):
        import torch
        return torch.sigmoid(margin.float())
    margin = np.asarray(margin, np.float32)
    with np.errstate(over='ignore'):  # exp(-margin) = inf -> probability 0
        return (np.float32(1.0) /
                (np.float32(1.0) + np.exp(-margin))).astype(np.float32)


def foreground(margin: ArrayLike,
               pred_thr: Optional[float] = None) -> ArrayLike:
    """The foreground rule.

    Args:
        margin: (..., H, W) foreground minus background logit.
        pred_thr: None for argmax (``margin > 0``); else the mask is
            ``sigmoid(margin) > pred_thr`` (float32 probability).

    Returns:
        bool mask, same shape and array type as ``margin``.
    """
    if pred_thr is None:
        return margin > 0
    return foreground_probability(margin) > pred_thr


def foreground_from_logits(logits: ArrayLike,
                           pred_thr: Optional[float] = None) -> ArrayLike:
    """The foreground rule on (B, 2, H, W) logits: (B, H, W) bool
    (``foreground(fg_margin(logits), pred_thr)``; argmax by default)."""
    return foreground(fg_margin(logits), pred_thr)


def prediction_foreground(prediction,
                          pred_thr: Optional[float] = None) -> np.ndarray:
    """The foreground rule on a predictor's answer.

    Args:
        prediction: an object with ``mask`` (argmax, i.e. ``foreground(
            margin)``) and ``prob`` (``foreground_probability(margin)``).
        pred_thr: see :func:`foreground`.

    Returns:
        np.ndarray: (H, W) bool.
    """
    if pred_thr is None:
        return np.asarray(prediction.mask, bool)
    return np.asarray(prediction.prob) > pred_thr


# ------------------------------------------------------------- the step
def _as_click(click: ClickLike) -> Click:
    if isinstance(click, Click):
        return click
    try:
        y, x, positive = click
    except (TypeError, ValueError):
        raise TypeError(f'a click must be a Click or a (y, x, positive) '
                        f'tuple, got {click!r}') from None
    return Click(y, x, positive)


def _per_sample_clicks(ref_label: ArrayLike, clicks) -> list:
    """One Optional[Click] per sample (a single one for a (H, W) label)."""
    if ref_label.ndim == 2:
        return [None if clicks is None else _as_click(clicks)]
    if ref_label.ndim != 3:
        raise ValueError(f'ref_label must have shape (B, H, W) or (H, W), '
                         f'got {tuple(ref_label.shape)}')
    clicks = list(clicks)
    if len(clicks) != ref_label.shape[0]:
        raise ValueError(f'{len(clicks)} clicks for a batch of '
                         f'{ref_label.shape[0]} reference labels')
    return [None if c is None else _as_click(c) for c in clicks]


def _like(mask: ArrayLike, ref_label: ArrayLike) -> ArrayLike:
    """``mask`` as the array type (and device) of ``ref_label``."""
    if mask is None:
        return None
    if isinstance(mask, (list, tuple)):  # one Optional mask per sample
        return [_like(m, ref_label) for m in mask]
    if _is_tensor(ref_label):
        import torch
        if isinstance(mask, torch.Tensor):
            return mask.to(ref_label.device)
        return torch.from_numpy(np.asarray(mask)).to(ref_label.device)
    if _is_tensor(mask):
        return mask.cpu().numpy()
    return np.asarray(mask)


def _copy(array: ArrayLike) -> ArrayLike:
    return array.clone() if _is_tensor(array) else array.copy()


def _updated(ref_label: ArrayLike, prev_fg) -> ArrayLike:
    """``ref_label`` updated by ``prev_fg`` (a new array): None = no update,
    a sequence = one Optional mask per sample of a (B, H, W) label."""
    if prev_fg is None:
        return _copy(ref_label)
    if not isinstance(prev_fg, (list, tuple)):
        return update_by_prediction(ref_label, _like(prev_fg, ref_label))
    if ref_label.ndim != 3 or len(prev_fg) != ref_label.shape[0]:
        raise ValueError(f'{len(prev_fg)} previous masks for reference '
                         f'labels of shape {tuple(ref_label.shape)}')
    out = _copy(ref_label)
    for index, mask in enumerate(prev_fg):
        if mask is not None:
            out[index] = update_by_prediction(ref_label[index],
                                              _like(mask, ref_label))
    return out


def advance_reference_label(ref_label: ArrayLike,
                            prev_fg: Optional[ArrayLike],
                            clicks,
                            radius: int = CLICK_RADIUS) -> ArrayLike:
    """The label half of a step: update by ``prev_fg``, then add disks.

    Args:
        ref_label: (B, H, W) or (H, W) uint8 codes (numpy or torch); not
            modified.
        prev_fg: bool foreground of the previous step (same shape), None
            (no update: the first step), or for a (B, H, W) label a
            sequence of one Optional (H, W) mask per sample (samples at
            different steps, e.g. the service's objects).
        clicks: for a (B, H, W) label one entry per sample, for a (H, W)
            label a single entry; each entry a :class:`Click`, a
            ``(y, x, positive)`` tuple, or None (no click for that sample,
            e.g. the official robot found nothing to correct). A batch may
            instead give a :class:`~interformer.interaction.
            reference_label.ClickBatch` of (B,) arrays/tensors (the
            device-resident simulation).
        radius: click disk radius in pixels.

    Returns:
        A new label of the same type and shape.
    """
    ref = _updated(ref_label, prev_fg)
    if isinstance(clicks, ClickBatch):  # vectorised, no host read
        return add_click_disks(ref, clicks, radius)
    per_sample = _per_sample_clicks(ref_label, clicks)
    batched = ref.ndim == 3
    for index, click in enumerate(per_sample):
        if click is not None:
            add_click_disk(ref[index] if batched else ref, click.y, click.x,
                           click.is_positive, radius)
    return ref


def click_step(decode: DecodeFn,
               ref_label: ArrayLike,
               prev_fg: Optional[ArrayLike],
               clicks,
               step: Step = 0,
               pred_thr: Optional[float] = None,
               radius: int = CLICK_RADIUS) -> StepResult:
    """Update -> add the click disk(s) -> decode -> foreground.

    Works on a batch ((B, H, W) label, one click entry per sample: the
    training simulation) or on one image ((H, W) label, one click entry: the
    predictor and the click test).

    Args:
        decode: the decoder (see :data:`DecodeFn` in the module doc).
        ref_label: the label of the previous step (all ``unknown`` before
            the first); not modified.
        prev_fg: the previous step's foreground, or None at the first step.
        clicks: see :func:`advance_reference_label`.
        step: 0-based click index (or one per sample), passed to
            ``decode``.
        pred_thr: the foreground rule (:func:`foreground`); None = argmax.
        radius: click disk radius in pixels.

    Returns:
        StepResult: the decoded label, the margin and the foreground (the
        foreground in the array type of ``ref_label``).
    """
    ref = advance_reference_label(ref_label, prev_fg, clicks, radius)
    prev = _like(prev_fg, ref)
    margin = decode(ref, prev, step)
    if tuple(margin.shape) != tuple(ref.shape):
        raise ValueError(f'decode returned a margin of shape '
                         f'{tuple(margin.shape)} for a reference label of '
                         f'shape {tuple(ref.shape)}')
    return StepResult(ref_label=ref, margin=margin,
                      foreground=_like(foreground(margin, pred_thr), ref))
