"""Iterative click simulation for training (the no-grad part of the loss).

Before the gradient forward, the segmentor plays the robot user against
itself to build the reference label it is trained on:

1. The reference label starts all ``unknown``; the first click goes to the
   deepest point of the object (candidate band ``first_click_k`` = 1.0).
2. ``n`` extra iterations are drawn with ``P(n) ∝ gamma ** n`` for
   ``0 <= n <= max_num_clicks`` (the same ``n`` for the whole batch).
3. If ``n > 0`` the backbone runs once, then ``n`` click steps
   (:func:`~interformer.interaction.click_step.click_step`, the step the
   predictor and the click test use): update the label by the previous
   prediction -> write the new disks -> neck + head -> upsample -> argmax;
   after each, one more robot click (band ``extra_click_k`` = 1.7). The
   label returned is the last one updated by the prediction with the last
   clicks' disks (not decoded: the gradient forward does that).

Clicks come from :func:`interformer.interaction.clicks.next_click` with the
``'official'`` protocol, i.e. the very routine the click test uses. All
randomness (``n`` and the tie-breaks inside ``next_click``) comes from one
``numpy.random.Generator`` seeded from torch's global RNG, so mmengine's
``randomness=dict(seed=...)`` makes the simulation reproducible.

``train_cfg`` keys read here (others are ignored):

===================  =======  ============================================
key                  default  meaning
===================  =======  ============================================
``max_num_clicks``   20       largest number of extra iterations ``n``
``gamma``            0.6      ``P(n) ∝ gamma ** n``
``first_click_k``    1.0      candidate band of the first click
``extra_click_k``    1.7      candidate band of the extra clicks
``inner_radius``     5        click disk radius in pixels
``route``            auto     ``'device'``: tensor ops on the model's
                              device (:mod:`.device_clicks`, same clicks
                              per call, no host sync in the loop);
                              ``'numpy'``: ``next_click`` on the host;
                              ``'auto'``: device on CUDA, numpy on CPU
                              (where OpenCV's transform is cheaper)
===================  =======  ============================================
"""
from typing import Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .click_step import (
    ArrayLike,
    advance_reference_label,
    click_step,
    fg_margin,
)
from .clicks import IGNORE_LABEL, Click, next_click
from .reference_label import CLICK_RADIUS, REF_UNKNOWN, ClickBatch

__all__ = [
    'DEFAULT_SIMULATION_CFG', 'sample_num_iterations', 'generator_from_torch',
    'simulate_reference_labels', 'simulate_clicks', 'HostRobot'
]

DEFAULT_SIMULATION_CFG = dict(
    max_num_clicks=20,
    gamma=0.6,
    first_click_k=1.0,
    extra_click_k=1.7,
    inner_radius=CLICK_RADIUS,
    route='auto')
#: The two implementations of the simulation (``route='auto'`` picks one).
ROUTES = ('device', 'numpy')

#: Click protocol shared with the click test.
CLICK_PROTOCOL = 'official'
_SEED_HIGH = 2**62


def sample_num_iterations(rng: np.random.Generator,
                          max_num_clicks: int = 20,
                          gamma: float = 0.6) -> int:
    """Draw the number of extra click iterations ``n``.

    Args:
        rng: numpy random generator.
        max_num_clicks: largest ``n`` (inclusive).
        gamma: ratio of the geometric weights, ``P(n) ∝ gamma ** n``.

    Returns:
        int: ``n`` in ``[0, max_num_clicks]``.
    """
    if int(max_num_clicks) != max_num_clicks or max_num_clicks < 0:
        raise ValueError(f'max_num_clicks must be a non-negative integer, '
                         f'got {max_num_clicks!r}')
    if not gamma > 0:
        raise ValueError(f'gamma must be positive, got {gamma!r}')
    weights = float(gamma)**np.arange(int(max_num_clicks) + 1)
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def generator_from_torch() -> np.random.Generator:
    """A numpy generator seeded by one draw from torch's global CPU RNG."""
    seed = int(torch.randint(0, _SEED_HIGH, (1, )).item())
    return np.random.default_rng(seed)


def _simulation_cfg(train_cfg: Optional[Mapping]) -> dict:
    """Merge the simulation keys of ``train_cfg`` over the defaults."""
    cfg = dict(DEFAULT_SIMULATION_CFG)
    if train_cfg is not None:
        if not isinstance(train_cfg, Mapping):
            raise ValueError(f'train_cfg must be a dict or None, got '
                             f'{type(train_cfg).__name__}')
        for key in cfg:
            if key in train_cfg and train_cfg[key] is not None:
                cfg[key] = train_cfg[key]
    for key in ('first_click_k', 'extra_click_k'):
        if not cfg[key] >= 1.0:
            raise ValueError(f'train_cfg.{key} must be >= 1, got {cfg[key]!r}')
    if cfg['route'] not in ROUTES + ('auto', ):
        raise ValueError(f'train_cfg.route must be one of {ROUTES} or '
                         f'\'auto\', got {cfg["route"]!r}')
    if not cfg['inner_radius'] >= 0:
        raise ValueError(f'train_cfg.inner_radius must be >= 0, got '
                         f'{cfg["inner_radius"]!r}')
    return cfg


def _clicker_gt(gt: Tensor, shape: tuple) -> np.ndarray:
    """(B, 1, H, W) training labels -> (B, H, W) int64.

    Values other than 0 and 1 (the ignore index, 255) become ``-1``; the
    official protocol then treats them as background.
    """
    if gt.dim() != 4 or gt.shape[1] != 1 or tuple(
            gt.shape[-2:]) != shape[-2:] or gt.shape[0] != shape[0]:
        raise ValueError(f'gt must have shape (B, 1, H, W) = '
                         f'({shape[0]}, 1, {shape[-2]}, {shape[-1]}) like '
                         f'the inputs, got {tuple(gt.shape)}')
    gt_np = gt[:, 0].detach().cpu().numpy().astype(np.int64)
    gt_np[(gt_np != 0) & (gt_np != 1)] = IGNORE_LABEL
    return gt_np


#: ``robot(pred, step) -> clicks``: the robot user of a batch. ``pred`` is
#: the (B, H, W) bool prediction (None before the first click), ``step``
#: the click index (0 = the first click); it returns one Optional click per
#: sample or a :class:`ClickBatch`.
Robot = Callable[[Optional[ArrayLike], int],
                 Union[Sequence[Optional[Click]], ClickBatch]]


class HostRobot:
    """The official robot user of a batch on the host (``next_click``).

    Args:
        gt: (B, H, W) int64 clicker ground truth (ignore = -1).
        cfg: ``first_click_k`` (step 0) and ``extra_click_k``.
        rng: the generator of the tie-breaks.
    """

    def __init__(self, gt: np.ndarray, cfg: Mapping,
                 rng: np.random.Generator) -> None:
        self.gt, self.rng = gt, rng
        self.ks = (cfg['first_click_k'], cfg['extra_click_k'])
        self.history: List[List[Click]] = [[] for _ in range(gt.shape[0])]

    def __call__(self, pred: Optional[np.ndarray],
                 step: int) -> List[Optional[Click]]:
        if pred is None:
            pred = np.zeros(self.gt.shape, bool)
        new = []
        for i, clicks in enumerate(self.history):
            click = next_click(self.gt[i], pred[i], clicks,
                               protocol=CLICK_PROTOCOL, rng=self.rng,
                               k=self.ks[min(step, 1)])
            if click is not None:
                clicks.append(click)
            new.append(click)
        return new


def simulate_clicks(segmentor, inputs: Tensor, ref_label: ArrayLike,
                    robot: Robot, num_iters: int,
                    radius: int = CLICK_RADIUS) -> ArrayLike:
    """The simulation loop, shared by both routes.

    The robot clicks; then ``num_iters`` times one
    :func:`~interformer.interaction.click_step.click_step` (update by the
    prediction, the disks, neck + head, argmax) and one more robot click;
    the result is the last label advanced by the last clicks (not decoded:
    the gradient forward does that). The backbone runs once, only if
    ``num_iters > 0``, without gradients and with ``segmentor`` in eval
    mode (its mode is restored, also on error).

    Args:
        segmentor: ``extract_image_feats``, ``decode_clicks`` and
            ``upsample_logits`` are used.
        inputs: (B, 3, H, W) normalised images.
        ref_label: (B, H, W) uint8 start label, numpy (host route) or a
            tensor on the device (device route).
        robot: see :data:`Robot`.
        num_iters: extra click iterations ``n``.
        radius: click disk radius.

    Returns:
        The final (B, H, W) label, of the type of ``ref_label``.
    """
    height, width = inputs.shape[-2:]
    clicks, fg = robot(None, 0), None
    if num_iters > 0:
        was_training = segmentor.training
        segmentor.eval()
        try:
            with torch.no_grad():
                feats = segmentor.extract_image_feats(inputs)

                def decode(ref, prev_fg, step):
                    ref_t = torch.as_tensor(ref).to(inputs.device)
                    logits = segmentor.decode_clicks(feats, ref_t[:, None])
                    return fg_margin(
                        segmentor.upsample_logits(logits, (height, width)))

                for step in range(num_iters):
                    out = click_step(decode, ref_label, fg, clicks, step,
                                     radius=radius)
                    ref_label, fg = out.ref_label, out.foreground
                    clicks = robot(fg, step + 1)
        finally:
            segmentor.train(was_training)
    return advance_reference_label(ref_label, fg, clicks, radius)


def simulate_reference_labels(
        segmentor,
        inputs: Tensor,
        gt: Tensor,
        train_cfg: Optional[Mapping] = None,
        rng: Optional[np.random.Generator] = None) -> Tensor:
    """Simulate the clicks of one training step; return the final state.

    Runs without gradients, with ``segmentor`` in eval mode (its previous
    mode is restored, also on error).

    Args:
        segmentor: a ``ClickSegmentor``; only ``extract_image_feats``,
            ``decode_clicks`` and ``upsample_logits`` are used.
        inputs: (B, 3, H, W) normalised images.
        gt: (B, 1, H, W) long labels, 1 object / 0 background / 255 ignore
            (ignore counts as background for click placement, as in the
            official code).
        train_cfg: simulation settings (see the module docstring).
        rng: generator for ``n`` and the click tie-breaks; by default one
            seeded from torch's global RNG.

    Returns:
        Tensor: (B, 1, H, W) uint8 reference label codes, on
        ``inputs.device``.
    """
    if inputs.dim() != 4:
        raise ValueError(f'inputs must have shape (B, 3, H, W), got '
                         f'{tuple(inputs.shape)}')
    cfg = _simulation_cfg(train_cfg)
    batch, _, height, width = inputs.shape
    if rng is None:
        rng = generator_from_torch()
    route = cfg['route']
    if route == 'auto':
        route = 'device' if inputs.device.type == 'cuda' else 'numpy'
    if route == 'device':
        from .device_clicks import simulate_on_device
        return simulate_on_device(segmentor, inputs, gt, cfg, rng)
    gt_np = _clicker_gt(gt, tuple(inputs.shape))
    num_iters = sample_num_iterations(rng, cfg['max_num_clicks'], cfg['gamma'])
    ref = np.full((batch, height, width), REF_UNKNOWN, dtype=np.uint8)
    ref = simulate_clicks(segmentor, inputs, ref, HostRobot(gt_np, cfg, rng),
                          num_iters, cfg['inner_radius'])
    return torch.from_numpy(ref)[:, None].to(inputs.device)
