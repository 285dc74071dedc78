"""The 5-state reference label: clicks and the previous prediction in one map.

The map holds one integer code per pixel of the (padded) model input:

====  ====================  =====================================
code  constant              meaning
====  ====================  =====================================
0     ``REF_DEFINITE_BG``   inside a negative-click disk
1     ``REF_POSSIBLE_BG``   the previous prediction said background
2     ``REF_UNKNOWN``       initial state
3     ``REF_POSSIBLE_FG``   the previous prediction said foreground
4     ``REF_DEFINITE_FG``   inside a positive-click disk
====  ====================  =====================================

A click writes a disk of radius ``CLICK_RADIUS`` (Euclidean distance <= 5 px,
81 px for an interior click) that overwrites any state. After a prediction,
``unknown`` pixels become ``possibly-X`` (X = the predicted label),
``possibly-X`` pixels predicted as the opposite go back to ``unknown``, and
definite pixels never change. Functions accept numpy arrays or torch tensors
of any leading shape; clicks are (y, x) in pixels of the map.
"""
import sys
from typing import TYPE_CHECKING, NamedTuple, Tuple, Union

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    'REF_DEFINITE_BG', 'REF_POSSIBLE_BG', 'REF_UNKNOWN', 'REF_POSSIBLE_FG',
    'REF_DEFINITE_FG', 'NUM_REF_STATES', 'CLICK_RADIUS', 'new_reference_label',
    'add_click_disk', 'add_click_disks', 'ClickBatch', 'update_by_prediction',
    'checked_click'
]

REF_DEFINITE_BG = 0
REF_POSSIBLE_BG = 1
REF_UNKNOWN = 2
REF_POSSIBLE_FG = 3
REF_DEFINITE_FG = 4
NUM_REF_STATES = 5
CLICK_RADIUS = 5

ArrayLike = Union[np.ndarray, 'torch.Tensor']


def _is_tensor(value) -> bool:
    """True for a torch tensor; torch is not imported here, so numpy users
    (e.g. the onnxruntime predictor) work without it."""
    torch = sys.modules.get('torch')
    return torch is not None and isinstance(value, torch.Tensor)


def new_reference_label(height: int, width: int) -> np.ndarray:
    """An all-``unknown`` map of shape (H, W), dtype uint8."""
    if height <= 0 or width <= 0:
        raise ValueError(f'reference label size must be positive, '
                         f'got {height}x{width}')
    return np.full((height, width), REF_UNKNOWN, dtype=np.uint8)


def checked_click(y, x, positive, shape: Tuple[int, int],
                  where: str = 'image') -> Tuple[int, int, bool]:
    """A user's click checked against the (H, W) ``shape`` it lands on.

    Shared by the predictors (torch and onnxruntime): coordinates must be
    integers inside ``shape``, ``positive`` a real bool.

    Returns:
        (y, x, positive) as (int, int, bool).

    Raises:
        TypeError: non-integer coordinates or a non-bool ``positive``.
        ValueError: a click outside ``shape`` (``where`` names it).
    """
    if not isinstance(positive, (bool, np.bool_)):
        raise TypeError(f'positive must be a bool (True: foreground '
                        f'click), got {positive!r}')
    if isinstance(y, bool) or isinstance(x, bool) or not (
            float(y).is_integer() and float(x).is_integer()):
        raise TypeError(f'click coordinates must be integers, '
                        f'got y={y!r}, x={x!r}')
    y, x = int(y), int(x)
    height, width = shape
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f'click (y={y}, x={x}) is outside the '
                         f'{height}x{width} {where}')
    return y, x, bool(positive)


def add_click_disk(ref_label: ArrayLike,
                   y: int,
                   x: int,
                   positive: bool,
                   radius: int = CLICK_RADIUS) -> ArrayLike:
    """Write a click disk into ``ref_label`` in place and return it.

    Args:
        ref_label: (..., H, W) integer map; the disk is written into every
            leading index.
        y, x: click position in pixels of the map, (row, column) order.
        positive: ``True`` writes ``REF_DEFINITE_FG``, ``False`` writes
            ``REF_DEFINITE_BG``.
        radius: pixels with ``dy**2 + dx**2 <= radius**2`` are set (the same
            set as an exact Euclidean distance transform <= radius).
    """
    height, width = ref_label.shape[-2:]
    if not (0 <= y < height and 0 <= x < width):
        raise ValueError(f'click (y={y}, x={x}) is outside the '
                         f'{height}x{width} reference label')
    y0, y1 = max(0, y - radius), min(height, y + radius + 1)
    x0, x1 = max(0, x - radius), min(width, x + radius + 1)
    dy = np.arange(y0, y1)[:, None] - y
    dx = np.arange(x0, x1)[None, :] - x
    disk = dy * dy + dx * dx <= radius * radius
    code = REF_DEFINITE_FG if positive else REF_DEFINITE_BG
    window = ref_label[..., y0:y1, x0:x1]
    if _is_tensor(ref_label):
        import torch
        disk_t = torch.from_numpy(disk).to(ref_label.device)
        window.masked_fill_(disk_t, code)
    else:
        window[..., disk] = code
    return ref_label


class ClickBatch(NamedTuple):
    """At most one click per sample of a batch, as (B,) arrays or tensors.

    The form the device-resident training simulation produces
    (:func:`~interformer.interaction.device_clicks.next_clicks`): the
    coordinates stay on the device, nothing is read back to the host.

    Attributes:
        y: (B,) integer rows.
        x: (B,) integer columns.
        positive: (B,) bool, True for a foreground click.
        valid: (B,) bool, False where the sample has no click.
    """
    y: ArrayLike
    x: ArrayLike
    positive: ArrayLike
    valid: ArrayLike


def add_click_disks(ref_label: ArrayLike, clicks: ClickBatch,
                    radius: int = CLICK_RADIUS) -> ArrayLike:
    """Write one click disk per sample into a (B, H, W) map (a new one).

    The vectorised form of :func:`add_click_disk` (same disk: ``dy**2 +
    dx**2 <= radius**2``) for a :class:`ClickBatch`: one pass over the
    batch, no host read of the coordinates (numpy or torch, any device).

    Returns:
        A new (B, H, W) map of the type, dtype and device of ``ref_label``.
    """
    if ref_label.ndim != 3:
        raise ValueError(f'add_click_disks: expected a (B, H, W) reference '
                         f'label, got shape {tuple(ref_label.shape)}')
    height, width = ref_label.shape[-2:]
    if _is_tensor(ref_label):
        import torch
        ys = torch.arange(height, device=ref_label.device).view(1, -1, 1)
        xs = torch.arange(width, device=ref_label.device).view(1, 1, -1)
        where = torch.where
    else:
        ys = np.arange(height).reshape(1, -1, 1)
        xs = np.arange(width).reshape(1, 1, -1)
        where = np.where
    dy = ys - clicks.y.reshape(-1, 1, 1)
    dx = xs - clicks.x.reshape(-1, 1, 1)
    disk = (dy * dy + dx * dx <= radius * radius) & \
        clicks.valid.reshape(-1, 1, 1)
    code = where(clicks.positive, REF_DEFINITE_FG,
                 REF_DEFINITE_BG).reshape(-1, 1, 1)
    if _is_tensor(ref_label):
        code = code.to(ref_label.dtype)
    else:
        code = code.astype(ref_label.dtype)
    return where(disk, code, ref_label)


def update_by_prediction(ref_label: ArrayLike, pred: ArrayLike) -> ArrayLike:
    """Return the map updated by a binary prediction (a new array/tensor).

    Args:
        ref_label: (..., H, W) integer map.
        pred: (..., H, W) foreground mask (bool or 0/1), broadcastable to
            ``ref_label``.
    """
    if tuple(ref_label.shape[-2:]) != tuple(pred.shape[-2:]):
        raise ValueError(f'prediction of shape {tuple(pred.shape)} does not '
                         f'match the reference label {tuple(ref_label.shape)}')
    if (isinstance(ref_label, np.ndarray) and ref_label.dtype == np.uint8
            and isinstance(pred, np.ndarray) and pred.dtype == np.bool_
            and pred.shape == ref_label.shape and ref_label.size):
        return _update_by_lookup(ref_label, pred)
    if _is_tensor(ref_label):
        import torch
        fg = pred.to(torch.bool)
        out = ref_label.clone()
        where = torch.where
    else:
        fg = np.asarray(pred).astype(bool)
        out = ref_label.copy()
        where = np.where
    ref = ref_label
    up = where(ref == REF_UNKNOWN, REF_POSSIBLE_FG,
               where(ref == REF_POSSIBLE_BG, REF_UNKNOWN, ref))
    down = where(ref == REF_UNKNOWN, REF_POSSIBLE_BG,
                 where(ref == REF_POSSIBLE_FG, REF_UNKNOWN, ref))
    new = where(fg, up, down)
    if _is_tensor(out):
        out.copy_(new)
    else:
        out[...] = new
    return out


def _update_table() -> np.ndarray:
    """The update rule as a 256-entry uint8 table indexed by
    ``NUM_REF_STATES * fg + code`` (codes >= 5 map to themselves)."""
    table = np.arange(256, dtype=np.uint8)
    for fg in (0, 1):
        for code in range(NUM_REF_STATES):
            new = code
            if code == REF_UNKNOWN:
                new = REF_POSSIBLE_FG if fg else REF_POSSIBLE_BG
            elif code == (REF_POSSIBLE_BG if fg else REF_POSSIBLE_FG):
                new = REF_UNKNOWN
            table[NUM_REF_STATES * fg + code] = new
    return table


_UPDATE_LUT = _update_table()


def _update_by_lookup(ref_label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """:func:`update_by_prediction` for uint8 codes 0..4 and a bool mask of
    the same shape: one ``cv2.LUT`` pass (about 6x faster than the six
    ``where`` passes, ~5x faster than ``np.take``)."""
    if ref_label.max() >= NUM_REF_STATES:
        raise ValueError(f'reference label codes must be in [0, '
                         f'{NUM_REF_STATES}), got {ref_label.max()}')
    index = np.ascontiguousarray(pred).view(np.uint8) * np.uint8(
        NUM_REF_STATES) + ref_label
    flat = index.reshape(-1, index.shape[-1])  # cv2 wants (rows, cols)
    return cv2.LUT(flat, _UPDATE_LUT).reshape(ref_label.shape)
