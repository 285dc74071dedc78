"""Click-test metrics: IoU, NoC, NoF and the mIoU-vs-clicks curve.

Framework-free (numpy only). The definitions follow RITM's
``isegm/inference/utils.py`` (``evaluation.md`` §5 and §7):

* ``NoC@t``: per instance, the 1-based index of the first click whose IoU
  is >= t, or ``max_clicks`` if no click reaches t; reported as the mean
  over instances.
* Two failure counts with names that cannot be confused:
  :func:`nof_ritm` is RITM's ``>=20@t`` column (instances with
  NoC == max_clicks, *including* those that first reach t exactly at the
  last click); :func:`nof_never_reached` counts instances that never reach
  t (FocusCut's NoF; the official InterFormer's "success ratio" is
  ``1 - nof_never_reached / N``).

Per-instance IoU lists may be shorter than ``max_clicks`` (RITM stops early
once the IoU reaches its target) and are only read up to ``max_clicks``.
"""
from typing import Dict, Sequence, Union

import numpy as np

__all__ = [
    'iou', 'noc', 'nof_ritm', 'nof_never_reached', 'miou_curve', 'summarize',
    'thr_key'
]

IouList = Union[Sequence[float], np.ndarray]


def iou(gt: np.ndarray, pred: np.ndarray, ignore_label: int = -1) -> float:
    """Foreground IoU with ignore pixels excluded.

    ``|pred & gt==1 & valid| / |(pred | gt==1) & valid|`` with
    ``valid = gt != ignore_label``, as RITM's ``get_iou`` (and mmseg's
    ``eval_metrics`` class-1 IoU with ``ignore_index``).

    Args:
        gt (np.ndarray): (H, W) integer ground truth: 1 object, 0
            background, ``ignore_label`` ignore.
        pred (np.ndarray): (H, W) bool (or 0/1 integer) predicted mask.
        ignore_label (int): the ignore value of ``gt`` (-1 internally, 255
            for on-disk/mmseg labels). Default: -1.

    Returns:
        float: IoU in [0, 1]. **An empty union** (no object and no predicted
        foreground on the valid pixels; RITM would return nan, and no
        benchmark instance hits it) **returns 1.0**: prediction and ground
        truth agree perfectly there.

    Raises:
        ValueError: shape mismatch, non-2-D input, or non-binary ``pred``.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 2 or gt.shape != pred.shape:
        raise ValueError(f'iou: gt and pred must be 2-D arrays of the same '
                         f'shape, got {gt.shape} and {pred.shape}')
    if ignore_label in (0, 1):
        raise ValueError(f'iou: ignore_label must differ from 0 and 1, got '
                         f'{ignore_label}')
    if pred.dtype != np.bool_:
        if not np.issubdtype(pred.dtype, np.integer) or (
                pred.size and (pred.min() < 0 or pred.max() > 1)):
            raise ValueError(f'iou: pred must be a bool or 0/1 mask, got '
                             f'dtype {pred.dtype}')
        pred = pred.astype(bool)
    fg = gt == 1
    valid = gt != ignore_label
    intersection = np.count_nonzero(pred & fg)
    union = np.count_nonzero((pred | fg) & valid)
    if union == 0:
        return 1.0
    return intersection / union


def _as_iou_array(ious: IouList, max_clicks: int, where: str) -> np.ndarray:
    """One instance's IoUs as float64, truncated to ``max_clicks``."""
    if not isinstance(max_clicks, (int, np.integer)) or max_clicks < 1:
        raise ValueError(f'{where}: max_clicks must be an int >= 1, got '
                         f'{max_clicks!r}')
    arr = np.asarray(ious, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f'{where}: each IoU list must be a non-empty 1-D '
                         f'sequence, got shape {arr.shape}')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{where}: IoU list contains nan/inf: {arr}')
    return arr[:max_clicks]


def _check_instances(all_ious: Sequence[IouList], where: str) -> None:
    if len(all_ious) == 0:
        raise ValueError(f'{where}: no instances (all_ious is empty)')


def noc(ious: IouList, thr: float, max_clicks: int = 20) -> int:
    """Number of clicks one instance needs to reach ``thr``.

    Args:
        ious (Sequence[float]): IoU after click 1, 2, ... (may stop early).
        thr (float): IoU threshold, e.g. 0.9.
        max_clicks (int): click budget; later entries are ignored.
            Default: 20.

    Returns:
        int: the first 1-based click index with IoU >= ``thr``, or
        ``max_clicks`` if none (so reaching ``thr`` exactly at the last
        click also gives ``max_clicks``).
    """
    arr = _as_iou_array(ious, max_clicks, 'noc')
    reached = np.flatnonzero(arr >= thr)
    return int(reached[0]) + 1 if reached.size else int(max_clicks)


def nof_ritm(all_ious: Sequence[IouList],
             thr: float,
             max_clicks: int = 20) -> int:
    """RITM's ``>=20@t``: instances whose NoC equals ``max_clicks``.

    This includes instances that first reach ``thr`` at the last click.
    """
    _check_instances(all_ious, 'nof_ritm')
    return sum(noc(ious, thr, max_clicks) == max_clicks for ious in all_ious)


def nof_never_reached(all_ious: Sequence[IouList],
                      thr: float,
                      max_clicks: int = 20) -> int:
    """Instances whose IoU never reaches ``thr`` within ``max_clicks``."""
    _check_instances(all_ious, 'nof_never_reached')
    return sum(not np.any(
        _as_iou_array(ious, max_clicks, 'nof_never_reached') >= thr)
               for ious in all_ious)


def miou_curve(all_ious: Sequence[IouList],
               max_clicks: int = 20) -> np.ndarray:
    """Mean IoU after each click, over instances.

    Lists shorter than ``max_clicks`` (RITM's early stop) are padded with
    their last IoU (``evaluation.md`` §13.4): an instance that stopped keeps
    its final mask. Lists longer than ``max_clicks`` are truncated.

    Returns:
        np.ndarray: (max_clicks,) float64, entry i = mean IoU after click
        i + 1.
    """
    _check_instances(all_ious, 'miou_curve')
    table = np.empty((len(all_ious), max_clicks), dtype=np.float64)
    for row, ious in zip(table, all_ious):
        arr = _as_iou_array(ious, max_clicks, 'miou_curve')
        row[:arr.size] = arr
        row[arr.size:] = arr[-1]
    return table.mean(axis=0)


def thr_key(thr: float) -> str:
    """The percent label used in :func:`summarize` keys: 0.85 -> '85'."""
    pct = round(float(thr) * 100, 6)
    return str(int(pct)) if pct == int(pct) else f'{pct:g}'


def summarize(all_ious: Sequence[IouList],
              iou_thrs: Sequence[float] = (0.8, 0.85, 0.9),
              max_clicks: int = 20) -> Dict[str, object]:
    """All click-test numbers of one dataset from the per-instance IoUs.

    Args:
        all_ious (Sequence[Sequence[float]]): one IoU list per instance.
        iou_thrs (Sequence[float]): thresholds. Default: (0.8, 0.85, 0.9).
        max_clicks (int): click budget. Default: 20.

    Returns:
        dict: with ``t = thr_key(thr)`` (e.g. ``'85'``):

        - ``'num_instances'`` (int), ``'max_clicks'`` (int)
        - ``f'NoC@{t}'`` (float): mean NoC
        - ``f'NoC_std@{t}'`` (float): population std of the NoC
        - ``f'NoF@{t}'`` (int): :func:`nof_ritm` (RITM's ``>=20@t``)
        - ``f'NoF_never@{t}'`` (int): :func:`nof_never_reached`
        - ``f'success_ratio@{t}'`` (float): ``1 - NoF_never / N`` (the
          official InterFormer's "Success ratio")
        - ``'mIoU_curve'`` (list of ``max_clicks`` floats): :func:`miou_curve`
        - ``f'mIoU@{k}'`` (float) for k in (1, 2, 3, 5, 10, 20) up to
          ``max_clicks``: the curve at click k.
    """
    _check_instances(all_ious, 'summarize')
    num = len(all_ious)
    result: Dict[str, object] = dict(num_instances=num,
                                     max_clicks=int(max_clicks))
    for thr in iou_thrs:
        key = thr_key(thr)
        nocs = np.array([noc(ious, thr, max_clicks) for ious in all_ious])
        never = nof_never_reached(all_ious, thr, max_clicks)
        result[f'NoC@{key}'] = float(nocs.mean())
        result[f'NoC_std@{key}'] = float(nocs.std())
        result[f'NoF@{key}'] = int(np.count_nonzero(nocs == max_clicks))
        result[f'NoF_never@{key}'] = int(never)
        result[f'success_ratio@{key}'] = 1.0 - never / num
    curve = miou_curve(all_ious, max_clicks)
    result['mIoU_curve'] = [float(v) for v in curve]
    for k in (1, 2, 3, 5, 10, 20):
        if k <= max_clicks:
            result[f'mIoU@{k}'] = float(curve[k - 1])
    return result
