"""The training click simulation as tensor operations on the model's device.

:func:`next_clicks` places one robot click per sample of a batch with the
``'official'`` protocol of :func:`~interformer.interaction.clicks.
next_click` (``training.md`` §3.1), without leaving the device:

1. error masks ``fn = fg & ~pred``, ``fp = ~fg & pred`` (ignore counts as
   background), already-clicked pixels removed before the transform;
2. the exact squared Euclidean distance transform with a one-pixel zero
   ring (:func:`squared_edt`): the integers that ``next_click`` compares
   (OpenCV's ``DIST_MASK_PRECISE`` squared and rounded, see
   :mod:`~interformer.interaction.distance`);
3. the sign (``max(fn) > max(fp)``, a tie is negative, both 0: no click);
4. the candidate band ``d^2 > floor(max^2 / k^2)`` (``k = 1``: the maxima),
   computed exactly from a host table of ``floor(n / k^2)``;
5. the seeded tie-break: ``next_click`` draws ``rng.integers(N)`` among
   the ``N`` candidates in raster order, which numpy's ``Generator``
   computes with Lemire's method from 32-bit draws. Given the same words
   (``rng.integers(0, 2**32, size=3, dtype=np.uint64)`` of a generator in
   the same state) :func:`lemire_index` returns the same index (the later
   words serve Lemire's rare rejections, probability < N / 2^32 each).

So for each sample, ``next_clicks`` returns exactly the click that
``next_click(gt, pred, clicks, 'official', rng, k)`` returns for a
generator whose next 32-bit draws are that sample's words
(``tests/test_interaction/test_device_clicks.py``). The random words of a
whole simulation are drawn on the host before the loop and copied once;
nothing inside the loop reads a value back to the host.

The distance transform is separable: a column pass (distance to the nearest
zero above or below, by cumulative max/min) and a row pass
``D(x) = min_x' (x - x')^2 + g(x')^2``, whose leftmost minimiser is
monotone in ``x``; it is found level by level (divide and conquer, each
level a fixed-shape scatter + cumsum + scatter-min over ``W + #queries``
positions per row), about ``log2(W)`` levels of ``O(W)`` work per row.
"""
import math
from fractions import Fraction
from functools import lru_cache
from typing import Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .reference_label import REF_UNKNOWN, ClickBatch

__all__ = [
    'WORDS_PER_CLICK', 'squared_edt', 'band_floor_table', 'lemire_index',
    'draw_words', 'next_clicks', 'mark_clicked', 'simulate_on_device',
    'run_clicks'
]

_KEY_BITS = 11  # argmin key = cost << _KEY_BITS | x' (x' < 2^11)
#: Random 32-bit words drawn per sample and click (see :func:`lemire_index`).
WORDS_PER_CLICK = 3
#: Largest ``max(H, W) + 2`` for the int32 route: a cost is at most
#: ``(W + 1)^2 + (H / 2 + 1)^2 < 2^20``, so the key stays below 2^31.
_INT32_MAX_SIZE = 900


def _column_pass(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, H, W) bool -> (N, H, W) distance to the nearest zero in the same
    column, the rows -1 and H counting as zeros."""
    height = mask.shape[-2]
    ys = torch.arange(height, device=mask.device, dtype=dtype).view(1, -1, 1)
    prev = torch.where(mask, -1, ys).cummax(dim=1).values
    nxt = torch.where(mask, height, ys).flip(1).cummin(dim=1).values.flip(1)
    return torch.minimum(ys - prev, nxt - ys)


def _row_envelope(f: Tensor) -> Tensor:
    """Leftmost ``argmin_x' (x - x')^2 + f(x')`` for every ``x`` of a row.

    Args:
        f: (R, N) int64, with ``f[:, 0] == f[:, -1] == 0`` (the ring).

    Returns:
        Tensor: (R, N) int64 minimiser ``x'`` of every ``x``.
    """
    rows, size = f.shape
    device, dtype = f.device, f.dtype
    arg = torch.empty_like(f)
    arg[:, 0] = 0
    arg[:, -1] = size - 1
    # Known minimisers: the multiples of `stride` and the last position.
    stride = 1 << math.ceil(math.log2(size - 1))
    while stride > 1:
        half = stride // 2
        xq = torch.arange(half, size - 1, stride, device=device, dtype=dtype)
        stride = half
        num = xq.numel()
        lo = arg[:, xq - half]
        hi = arg[:, (xq + half).clamp(max=size - 1)]
        # Query j searches [lo_j, hi_j] (hi_j = lo_{j+1}); laid end to end,
        # position p of a row is query seg(p) at x' = p - seg(p).
        starts = lo + torch.arange(num, device=device, dtype=dtype)
        pos = torch.arange(size + num, device=device, dtype=dtype)
        seg = torch.zeros((rows, size + num), dtype=dtype, device=device)
        seg.scatter_(1, starts.long(), 1)
        seg = seg.cumsum(dim=1, dtype=dtype).sub_(1)
        valid = seg >= 0
        seg.clamp_(min=0)
        xp = pos - seg
        valid &= xp <= hi.gather(1, seg.long())
        xp.clamp_(max=size - 1)
        diff = xq[seg] - xp
        cost = diff * diff + f.gather(1, xp.long())
        key = cost.bitwise_left_shift_(_KEY_BITS).bitwise_or_(xp)
        key.masked_fill_(~valid, torch.iinfo(dtype).max)
        best = torch.full((rows, num), torch.iinfo(dtype).max, dtype=dtype,
                          device=device)
        best.scatter_reduce_(1, seg.long(), key, 'amin')
        arg[:, xq.long()] = best & ((1 << _KEY_BITS) - 1)
    return arg


def squared_edt(mask: Tensor) -> Tensor:
    """Exact squared Euclidean distance transform with a zero ring.

    The same integers as ``squared_distance`` of
    :func:`~interformer.interaction.distance.padded_distance_transform`:
    for every mask pixel the squared distance to the nearest non-mask pixel
    or to the one-pixel ring around the image; 0 off the mask.

    Args:
        mask: (N, H, W) bool.

    Returns:
        Tensor: (N, H, W) int64 on ``mask.device``.
    """
    if mask.dim() != 3 or mask.dtype != torch.bool:
        raise ValueError(f'squared_edt: mask must be a (N, H, W) bool '
                         f'tensor, got {tuple(mask.shape)} {mask.dtype}')
    num, height, width = mask.shape
    if width + 2 > 1 << _KEY_BITS:
        raise ValueError(f'squared_edt: width {width} is over the '
                         f'{(1 << _KEY_BITS) - 2} px this transform handles')
    small = max(height, width) + 2 <= _INT32_MAX_SIZE
    dtype = torch.int32 if small else torch.int64
    g = _column_pass(mask, dtype)
    f = torch.nn.functional.pad((g * g).reshape(num * height, width),
                                (1, 1))
    arg = _row_envelope(f).long()
    xs = torch.arange(width + 2, device=mask.device)
    diff = xs - arg
    d2 = diff * diff + f.gather(1, arg).long()
    return d2[:, 1:-1].reshape(num, height, width)


@lru_cache(maxsize=16)
def _band_floor_np(k: float, max_sq: int) -> np.ndarray:
    if k == 1.0:  # the maxima only, as next_click's _band_floor
        return np.arange(-1, max_sq, dtype=np.int64)
    frac = Fraction(k)
    num, den = frac.numerator**2, frac.denominator**2
    return np.array([(n * den) // num for n in range(max_sq + 1)],
                    dtype=np.int64)


def band_floor_table(k: float, height: int, width: int,
                     device: torch.device) -> Tensor:
    """``table[n]``: the largest squared distance that is not a candidate
    when the maximum is ``n`` (``floor(n / k^2)`` exactly, ``n - 1`` for
    ``k = 1``), for every ``n`` an (H, W) image can have."""
    if not k >= 1.0:
        raise ValueError(f'candidate band k must be >= 1, got {k!r}')
    max_sq = ((min(height, width) + 2) // 2)**2
    return _band_floor_on(float(k), max_sq, torch.device(device))


@lru_cache(maxsize=16)
def _band_floor_on(k: float, max_sq: int, device: torch.device) -> Tensor:
    # one copy per device, not one per training step
    return torch.from_numpy(_band_floor_np(k, max_sq)).to(device)


def lemire_index(words: Tensor, count: Tensor) -> Tensor:
    """numpy ``Generator.integers(count)`` from its 32-bit draws.

    numpy maps a 32-bit word ``w`` to ``(w * count) >> 32`` and rejects it
    (draws the next word) when ``(w * count) mod 2^32`` is below
    ``(2^32 - count) mod count``, which happens with probability below
    ``count / 2^32`` (under 2^-12 for a 512x512 image). The words are used
    in order; the result differs from numpy only if all of them are
    rejected (probability below 2^-36 with the 3 words of
    :data:`WORDS_PER_CLICK` at that size).

    Args:
        words: (B, K) int64 in ``[0, 2^32)``.
        count: (B, ) int64 ``>= 1``, at most ``2^31``.

    Returns:
        Tensor: (B, ) int64 index in ``[0, count)``.
    """
    count = count.clamp(min=1)
    low = (1 << 32) - 1
    threshold = ((1 << 32) - count) % count
    result = (words[:, -1] * count) >> 32
    for j in range(words.shape[1] - 2, -1, -1):
        prod = words[:, j] * count
        result = torch.where((prod & low) < threshold, result, prod >> 32)
    return result


def draw_words(rng: np.random.Generator, shape: Tuple[int, ...]) -> Tensor:
    """``shape + (WORDS_PER_CLICK, )`` int64 32-bit draws of ``rng`` (the
    words ``rng.integers`` consumes), on the CPU."""
    words = rng.integers(0, 2**32, size=tuple(shape) + (WORDS_PER_CLICK, ),
                         dtype=np.uint64)
    return torch.from_numpy(words.astype(np.int64))


def next_clicks(fg: Tensor, pred: Tensor, clicked: Tensor, floor: Tensor,
                words: Tensor) -> ClickBatch:
    """One official-protocol robot click per sample, on the device.

    Args:
        fg: (B, H, W) bool ground truth ``gt == 1``.
        pred: (B, H, W) bool current prediction.
        clicked: (B, H, W) bool pixels clicked so far.
        floor: the :func:`band_floor_table` of the candidate band ``k``.
        words: (B, K) int64 32-bit random draws per sample.

    Returns:
        ClickBatch: ``(y, x, positive, valid)``, each (B, ): int64 row and
        column, bool sign, bool "a click was placed" (False when nothing
        is wrong; y, x are then meaningless).
    """
    batch, height, width = fg.shape
    fn = fg & ~pred & ~clicked
    fp = pred & ~fg & ~clicked
    d2 = squared_edt(torch.cat([fn, fp])).reshape(2, batch, height * width)
    maxima = d2.amax(dim=2)
    positive = maxima[0] > maxima[1]
    sq_max = torch.where(positive, maxima[0], maxima[1])
    valid = sq_max > 0
    chosen = torch.where(positive[:, None], d2[0], d2[1])
    cand = chosen > floor[sq_max][:, None]
    ranks = cand.cumsum(dim=1)
    index = lemire_index(words, ranks[:, -1])
    flat = (ranks <= index[:, None]).sum(dim=1).clamp(max=height * width - 1)
    return ClickBatch(flat // width, flat % width, positive, valid)


def mark_clicked(clicked: Tensor, clicks: ClickBatch) -> Tensor:
    """Mark each valid click's pixel in the (B, H, W) bool ``clicked`` map
    (in place; the official robot never clicks a pixel twice)."""
    height, width = clicked.shape[-2:]
    flat = clicked.view(clicked.shape[0], height * width)
    index = (clicks.y * width + clicks.x).clamp(0, height * width - 1)
    hit = flat.gather(1, index[:, None]) | clicks.valid[:, None]
    flat.scatter_(1, index[:, None], hit)
    return clicked


def simulate_on_device(segmentor,
                       inputs: Tensor,
                       gt: Tensor,
                       cfg: Mapping,
                       rng: np.random.Generator) -> Tensor:
    """The click simulation of training on ``inputs.device``.

    The route ``'device'`` of
    :func:`~interformer.interaction.click_simulation.
    simulate_reference_labels`: ``n`` is drawn from ``rng`` as there, then
    all the random words of the ``n + 1`` click steps at once (one copy to
    the device); the loop over the simulated clicks never reads back.

    Args:
        segmentor: provides ``extract_image_feats``, ``decode_clicks`` and
            ``upsample_logits``.
        inputs: (B, 3, H, W) normalised images.
        gt: (B, 1, H, W) labels (1 object; anything else, including the
            ignore value, is background for the clicker).
        cfg: merged simulation settings (``max_num_clicks``, ``gamma``,
            ``first_click_k``, ``extra_click_k``, ``inner_radius``).
        rng: generator for ``n`` and the tie-break words.

    Returns:
        Tensor: (B, 1, H, W) uint8 reference label on ``inputs.device``.
    """
    from .click_simulation import sample_num_iterations
    batch, _, height, width = inputs.shape
    if gt.dim() != 4 or tuple(gt.shape) != (batch, 1, height, width):
        raise ValueError(f'gt must have shape (B, 1, H, W) = ({batch}, 1, '
                         f'{height}, {width}) like the inputs, got '
                         f'{tuple(gt.shape)}')
    num_iters = sample_num_iterations(rng, cfg['max_num_clicks'],
                                      cfg['gamma'])
    words = draw_words(rng, (num_iters + 1, batch))
    return run_clicks(segmentor, inputs, gt, cfg, words)


class DeviceRobot:
    """The official robot user of a batch, on the device (no host read).

    Called as ``robot(pred, step)`` by the simulation loop
    (:func:`~interformer.interaction.click_simulation.simulate_clicks`):
    ``pred`` is the (B, H, W) bool prediction (None before the first
    click), ``step`` the click index (0: the first click, band
    ``first_click_k``; later ones ``extra_click_k``); returns the
    :class:`ClickBatch` of that step and marks its pixels as clicked.

    Args:
        fg: (B, H, W) bool ground truth ``gt == 1``.
        cfg: ``first_click_k`` and ``extra_click_k``.
        words: (n + 1, B, K) int64 random words, row ``step`` per call.
    """

    def __init__(self, fg: Tensor, cfg: Mapping, words: Tensor) -> None:
        height, width = fg.shape[-2:]
        self.fg = fg
        self.words = words.to(fg.device, non_blocking=True)
        self.clicked = torch.zeros_like(fg)
        self.floors = [
            band_floor_table(cfg[key], height, width, fg.device)
            for key in ('first_click_k', 'extra_click_k')
        ]

    def __call__(self, pred: Optional[Tensor], step: int) -> ClickBatch:
        if pred is None:
            pred = torch.zeros_like(self.fg)
        clicks = next_clicks(self.fg, pred, self.clicked,
                             self.floors[min(step, 1)], self.words[step])
        mark_clicked(self.clicked, clicks)
        return clicks


def run_clicks(segmentor,
               inputs: Tensor,
               gt: Tensor,
               cfg: Mapping,
               words: Tensor) -> Tensor:
    """The simulation of :func:`simulate_on_device` for given random words:
    the shared loop (:func:`~interformer.interaction.click_simulation.
    simulate_clicks`, i.e. :func:`~interformer.interaction.click_step.
    click_step` per click) with a :class:`DeviceRobot` and a reference
    label on the device.

    Args:
        words: (n + 1, B, K) int64 32-bit draws, one pair per sample and
            click step (step 0 is the first click); ``n`` extra click
            iterations are run.
        others: as :func:`simulate_on_device`.

    Returns:
        Tensor: (B, 1, H, W) uint8 reference label on ``inputs.device``.
    """
    from .click_simulation import simulate_clicks
    device = inputs.device
    batch, _, height, width = inputs.shape
    if words.dim() != 3 or words.shape[1] != batch:
        raise ValueError(f'words must have shape (n + 1, {batch}, K), got '
                         f'{tuple(words.shape)}')
    fg = gt[:, 0].to(device, non_blocking=True) == 1
    ref = torch.full((batch, height, width), REF_UNKNOWN, dtype=torch.uint8,
                     device=device)
    robot = DeviceRobot(fg, cfg, words)
    ref = simulate_clicks(segmentor, inputs, ref, robot,
                          words.shape[0] - 1, int(cfg['inner_radius']))
    return ref[:, None]
