"""The robot user: where the next click goes, given the ground truth and the
current prediction.

One routine serves the click test (both protocols) and the training click
simulation ('official' protocol, ``k=1.7`` after the first click). The rule
(``evaluation.md`` §3, ``training.md`` §3.1):

1. Error masks: false negatives ``fn = (gt == 1) & ~pred`` and false
   positives ``fp = (gt != 1) & pred``. With ``ignore_in_clicker`` (RITM)
   ignore pixels (gt == -1) are in neither mask; without it (official) the
   clicker sees only ``gt == 1`` and ignore pixels count as background.
2. Already-clicked pixels: RITM zeroes them in the distance maps *after*
   the transform; the official code removes them from both masks *before*
   it, so they act as holes that pull nearby distances down.
3. Each mask gets the Euclidean distance transform with a one-pixel zero
   ring (the image border counts as "not an error"), computed on the mask's
   bounding box only (:mod:`interformer.interaction.distance`).
4. The click is positive iff ``max(fn_dist) > max(fp_dist)`` (strictly; a
   tie gives a negative click) and goes into the winning mask.
5. Candidates: RITM takes the pixels equal to the maximum and clicks the
   first one in raster order (smallest row, then column). The official code
   takes the pixels with ``dist > max / k`` (``k = 1`` uses
   ``1 + 1.1920929e-07``, i.e. the maxima) and draws one uniformly; here
   with a seeded :class:`numpy.random.Generator` instead of the unseeded
   Python ``random``.

All distance comparisons (steps 4 and 5) are made on the exact integer
squared distances. The reference code compares OpenCV's float32 values,
which are 1 ulp off for about 0.2 % of the pixels depending on their
column (see :mod:`~interformer.interaction.distance`), so its ties are
decided by rounding noise: a true fn/fp tie can come out positive, and a
true tie inside a map can lose a candidate. Here a tie is a tie, as the
rule says; away from exact ties the results are the same.
6. Nothing wrong (both maxima 0): RITM returns a degenerate negative click
   at (0, 0); the official code returns no click (None).

Coordinates are ``(y, x)`` = (row, column), 0-based pixels of the arrays
given (the padded canvas for the official protocol).
"""
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence, Tuple

import numpy as np

from .distance import bbox_distance_transform, squared_distance
from .protocols import ClickProtocol, ProtocolLike, get_protocol

__all__ = [
    'Click', 'ClickCandidates', 'find_click_candidates', 'next_click',
    'IGNORE_LABEL', 'FLOAT32_EPS'
]

IGNORE_LABEL = -1
# np.finfo(np.float32).eps, as written in the official code: candidates for
# k = 1 are the pixels with dist > max / (1 + eps), i.e. the exact maxima
# (which is how they are computed here).
FLOAT32_EPS = 1.1920929e-07


@dataclass(frozen=True)
class Click:
    """One click, in (y, x) order.

    Attributes:
        y (int): row, 0-based pixel.
        x (int): column, 0-based pixel.
        is_positive (bool): True for a foreground click, False for a
            background one.
    """
    y: int
    x: int
    is_positive: bool

    def __post_init__(self) -> None:
        try:
            y, x = operator.index(self.y), operator.index(self.x)
        except TypeError:
            raise TypeError(f'Click: y and x must be integers, got '
                            f'({self.y!r}, {self.x!r})') from None
        if y < 0 or x < 0:
            raise ValueError(f'Click: y and x must be >= 0, got ({y}, {x})')
        object.__setattr__(self, 'y', y)
        object.__setattr__(self, 'x', x)
        object.__setattr__(self, 'is_positive', bool(self.is_positive))


@dataclass(frozen=True, eq=False)
class ClickCandidates:
    """Where the next click may go.

    Attributes:
        is_positive (bool): the sign of the next click.
        coords (np.ndarray): (N, 2) int64 candidate pixels (y, x) in raster
            order (N >= 1).
        distance (float): the largest distance of the chosen error mask
            (0.0 for RITM's degenerate click).
        fn_max (float): largest false-negative distance.
        fp_max (float): largest false-positive distance.
    """
    is_positive: bool
    coords: np.ndarray
    distance: float
    fn_max: float
    fp_max: float


def _check_inputs(gt: np.ndarray, pred: np.ndarray,
                  clicks: Sequence[Click]) -> Tuple[np.ndarray, np.ndarray]:
    """Validate the arrays and clicks; returns (gt, pred as bool)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 2 or gt.size == 0:
        raise ValueError(f'next_click: gt must be a non-empty 2-D (H, W) '
                         f'array, got shape {gt.shape}')
    if pred.ndim != 2:
        raise ValueError(f'next_click: pred must be a 2-D (H, W) mask, got '
                         f'shape {pred.shape}')
    if gt.shape != pred.shape:
        raise ValueError(f'next_click: gt and pred shapes differ: '
                         f'{gt.shape} vs {pred.shape}')
    if gt.dtype != np.bool_:
        if not np.issubdtype(gt.dtype, np.integer):
            raise ValueError(f'next_click: gt must be an integer array '
                             f'(1 object, 0 background, -1 ignore), got '
                             f'dtype {gt.dtype}')
        lo, hi = int(gt.min()), int(gt.max())
        if lo < IGNORE_LABEL or hi > 1:
            raise ValueError(
                f'next_click: gt values must be 1 (object), 0 (background) '
                f'or -1 (ignore), got values in [{lo}, {hi}] (map an on-disk '
                f'ignore value such as 255 or 128 to -1 first)')
    if pred.dtype != np.bool_:
        if not np.issubdtype(pred.dtype, np.integer):
            raise ValueError(f'next_click: pred must be a bool (or 0/1 '
                             f'integer) mask, got dtype {pred.dtype}; '
                             f'threshold probabilities first')
        if pred.min() < 0 or pred.max() > 1:
            raise ValueError(f'next_click: pred values must be 0 or 1, got '
                             f'values in [{pred.min()}, {pred.max()}]')
        pred = pred.astype(bool)
    height, width = gt.shape
    for click in clicks:
        try:
            y, x = click.y, click.x
        except AttributeError:
            raise TypeError(f'next_click: clicks must be Click objects, got '
                            f'{click!r}') from None
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f'next_click: click ({y}, {x}) is outside the '
                             f'{height}x{width} image')
    return gt, pred


def _max_and_crop(mask: np.ndarray, clicks: Sequence[Click],
                  zero_clicked: bool):
    """Bounding-box DT of ``mask``.

    Returns:
        tuple: (largest exact squared distance, DT of the box, box origin
        (y0, x0)); RITM's clicked pixels are zeroed first if asked.
    """
    result = bbox_distance_transform(mask)
    if result is None:
        return 0, None, (0, 0)
    dist, (y0, x0) = result
    if zero_clicked:
        h, w = dist.shape
        for click in clicks:
            yy, xx = click.y - y0, click.x - x0
            if 0 <= yy < h and 0 <= xx < w:
                dist[yy, xx] = 0.0
    return squared_distance(dist.max()), dist, (y0, x0)


def _band_floor(sq_max: int, k: float) -> int:
    """Largest squared distance that is *not* a candidate.

    A pixel at true distance ``sqrt(n)`` is a candidate iff
    ``sqrt(n) > sqrt(sq_max) / k``, i.e. ``n > sq_max / k**2``; with ``k``
    as an exact fraction ``p / q`` that is ``n > floor(sq_max q^2 / p^2)``.
    For ``k = 1`` (and the official ``1 + float32 eps``) the candidates
    are the exact maxima: ``n > sq_max - 1``.
    """
    if k == 1.0:
        return sq_max - 1
    frac = Fraction(k)
    return (sq_max * frac.denominator**2) // frac.numerator**2


def _resolve_k(protocol: ClickProtocol, k: Optional[float]) -> float:
    if k is None:
        return protocol.candidate_k
    k = float(k)
    if not k >= 1.0:
        raise ValueError(f'next_click: k must be >= 1, got {k}')
    if k > 1.0 and protocol.tie_break != 'random':
        raise ValueError(f"next_click: k > 1 needs a protocol with "
                         f"tie_break='random', got protocol "
                         f'{protocol.name!r}')
    return k


def find_click_candidates(
        gt: np.ndarray,
        pred: np.ndarray,
        clicks: Sequence[Click] = (),
        protocol: ProtocolLike = 'ritm',
        k: Optional[float] = None) -> Optional[ClickCandidates]:
    """All the pixels the next click may go to, and its sign.

    Args:
        gt (np.ndarray): (H, W) int ground truth: 1 object, 0 background,
            -1 ignore (bool is accepted too).
        pred (np.ndarray): (H, W) bool current prediction (all False before
            the first click); 0/1 integers are accepted.
        clicks (Sequence[Click]): clicks made so far.
        protocol (str | dict | ClickProtocol): ``'ritm'`` (default),
            ``'official'`` or a :class:`ClickProtocol`.
        k (float, optional): candidate band: true distance > max / k, with
            ``k`` taken as the exact value of the float. None uses
            ``protocol.candidate_k``. k > 1 needs a random tie-break.

    Returns:
        ClickCandidates | None: None when the protocol adds no click (both
        error masks empty under ``no_error_action='none'``). For the
        ``'first'`` tie-break the candidates are the pixels equal to the
        maximum; RITM's degenerate case gives the single candidate (0, 0).
    """
    protocol = get_protocol(protocol)
    k = _resolve_k(protocol, k)
    gt, pred = _check_inputs(gt, pred, clicks)

    fg = gt if gt.dtype == np.bool_ else gt == 1
    fn = fg > pred  # fg & ~pred for bool arrays
    if protocol.ignore_in_clicker and gt.dtype != np.bool_:
        fp = pred & (gt == 0)
    else:
        fp = pred > fg  # pred & ~fg
    holes = protocol.clicked_handling == 'hole_before_dt'
    if holes and len(clicks):
        ys = [c.y for c in clicks]
        xs = [c.x for c in clicks]
        fn[ys, xs] = False
        fp[ys, xs] = False

    fn_sq, fn_dist, fn_origin = _max_and_crop(fn, clicks, not holes)
    fp_sq, fp_dist, fp_origin = _max_and_crop(fp, clicks, not holes)
    fn_max, fp_max = float(np.sqrt(fn_sq)), float(np.sqrt(fp_sq))
    is_positive = fn_sq > fp_sq
    if is_positive:
        sq_max, dist, (y0, x0) = fn_sq, fn_dist, fn_origin
    else:
        sq_max, dist, (y0, x0) = fp_sq, fp_dist, fp_origin

    if sq_max == 0:
        if protocol.no_error_action == 'none':
            return None
        # RITM: every pixel of the all-zero map is a maximum; the first in
        # raster order is (0, 0).
        return ClickCandidates(False, np.zeros((1, 2), np.int64), 0.0, fn_max,
                               fp_max)

    # Candidates have squared distance n > sq_min, i.e. n >= sq_min + 1;
    # the threshold sits halfway (in n) below that, far from any
    # 1-ulp-rounded sqrt(n) of the map.
    sq_min = _band_floor(sq_max, k)
    hits = dist > dist.dtype.type(np.sqrt(sq_min + 0.5))
    ys, xs = np.divmod(np.flatnonzero(hits), dist.shape[1])
    coords = np.stack([ys + y0, xs + x0], axis=1).astype(np.int64)
    dist_max = float(np.sqrt(sq_max))
    return ClickCandidates(bool(is_positive), coords, dist_max, fn_max, fp_max)


def next_click(gt: np.ndarray,
               pred: np.ndarray,
               clicks: Sequence[Click],
               protocol: ProtocolLike = 'ritm',
               rng: Optional[np.random.Generator] = None,
               k: Optional[float] = None) -> Optional[Click]:
    """Place the next robot click.

    Args:
        gt (np.ndarray): (H, W) int ground truth: 1 object, 0 background,
            -1 ignore (bool is accepted too).
        pred (np.ndarray): (H, W) bool current prediction (all False before
            the first click); 0/1 integers are accepted.
        clicks (Sequence[Click]): clicks made so far, in order.
        protocol (str | dict | ClickProtocol): ``'ritm'`` (default) or
            ``'official'`` or a :class:`ClickProtocol`.
        rng (np.random.Generator, optional): required by protocols with
            ``tie_break='random'`` (e.g. ``np.random.default_rng(seed)``);
            ignored otherwise.
        k (float, optional): candidate band (distance > max / k); None uses
            the protocol's ``candidate_k`` (1.0). Training uses 1.7 after
            the first click.

    Returns:
        Click | None: the new click at (y, x), or None when the protocol
        adds no click (official protocol, nothing wrong).

    Raises:
        ValueError: bad shapes or values, a click outside the image, a
            random protocol without ``rng``, or k < 1.
        TypeError: ``rng`` not a :class:`numpy.random.Generator`, or a click
            that is not a :class:`Click`.
    """
    protocol = get_protocol(protocol)
    if protocol.tie_break == 'random':
        if rng is None:
            raise ValueError(
                f'next_click: protocol {protocol.name!r} breaks ties at '
                f'random and needs rng=np.random.default_rng(seed)')
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f'next_click: rng must be a numpy.random.'
                            f'Generator, got {type(rng).__name__}')
    candidates = find_click_candidates(gt, pred, clicks, protocol, k)
    if candidates is None:
        return None
    if protocol.tie_break == 'first':
        index = 0
    else:
        index = int(rng.integers(len(candidates.coords)))
    y, x = candidates.coords[index]
    return Click(int(y), int(x), candidates.is_positive)
