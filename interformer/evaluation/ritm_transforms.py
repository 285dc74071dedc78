"""Geometry of RITM's test-time transforms: horizontal flip and ZoomIn.

Framework-free (numpy) rules that reproduce RITM's ``isegm/inference/
transforms/{flip,zoom_in}.py`` (``evaluation.md`` §9, TV9, TV11); the
click test's test-time augmentation (:mod:`interformer.evaluation.tta`)
runs them. Boxes are :class:`~interformer.interaction.geometry.Box`
``(y0, x0, y1, x1)`` with exclusive ends, in original-image pixels; RITM's
inclusive ``(rmin, rmax, cmin, cmax)`` is ``box.to_inclusive()``. Clicks are
(y, x).

Flip (TV9): a click at column x maps to ``W - 1 - x``; the logits of the
mirrored image are flipped back and averaged with the plain ones *before*
the sigmoid.

ZoomIn (TV11), from click ``skip_clicks + 1`` on (:class:`RitmZoomIn`):

1. ROI = bbox of (previous prob > ``prob_thresh``) plus every positive
   click; no ROI (no zoom) while that mask is empty.
2. Expand it about its centre by ``expansion_ratio`` per side, with at least
   ``min_crop_size`` pixels per side, round with Python ``round`` (half to
   even), clamp to the image.
3. Keep the old ROI unless there is none, a positive click falls outside it
   (RITM's test treats the last row/column as outside) or the box IoU of
   new and old ROI is below ``recompute_thresh_iou``.
4. Resize the crop so that its longer side is ``target_size`` (this also
   shrinks large crops); clicks map to ``crop_h * (y - y0) / roi_h``.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from interformer.interaction.clicks import Click
from interformer.interaction.geometry import Box

__all__ = [
    'flip_x', 'flip_clicks', 'merge_flipped_logits', 'expand_bbox',
    'get_object_roi', 'roi_target_shape', 'map_click_to_roi', 'bbox_iou',
    'roi_contains_positive_clicks', 'update_roi', 'RitmZoomIn',
    'ZOOM_IN_DEFAULTS', 'ritm_zoom_in_params'
]

#: RITM ``cvpr`` mode ZoomIn settings (target_size 600 for DAVIS).
ZOOM_IN_DEFAULTS = dict(target_size=400,
                        skip_clicks=1,
                        expansion_ratio=1.4,
                        min_crop_size=200,
                        recompute_thresh_iou=0.5,
                        prob_thresh=0.5)

TargetSize = Union[int, Tuple[int, int]]


def ritm_zoom_in_params(dataset: str = '') -> dict:
    """RITM's ``cvpr``-mode ZoomIn settings for a dataset (its
    ``evaluate_model.py``: target size 600 for DAVIS, 400 otherwise)."""
    target = 600 if dataset.lower() == 'davis' else 400
    return dict(ZOOM_IN_DEFAULTS, target_size=target)


# ------------------------------------------------------------------ flip
def flip_x(x: int, width: int) -> int:
    """Column of pixel ``x`` in the horizontally mirrored image."""
    if not 0 <= x < width:
        raise ValueError(f'flip_x: x={x} outside an image of width {width}')
    return width - 1 - x


def flip_clicks(clicks: Sequence[Click], width: int) -> list:
    """Mirror clicks horizontally (y kept, x -> W - 1 - x)."""
    return [Click(c.y, flip_x(c.x, width), c.is_positive) for c in clicks]


def merge_flipped_logits(logits: np.ndarray,
                         flipped_logits: np.ndarray) -> np.ndarray:
    """Average logits with those predicted on the mirrored image.

    Args:
        logits (np.ndarray): (..., H, W) logits of the plain image.
        flipped_logits (np.ndarray): (..., H, W) logits of the mirrored
            image (still mirrored).

    Returns:
        np.ndarray: (..., H, W) ``0.5 * (logits + flip(flipped_logits))``,
        to which the sigmoid is applied afterwards.
    """
    logits, flipped_logits = np.asarray(logits), np.asarray(flipped_logits)
    if logits.shape != flipped_logits.shape or logits.ndim < 2:
        raise ValueError(f'merge_flipped_logits: shapes differ or are not '
                         f'(..., H, W): {logits.shape} vs '
                         f'{flipped_logits.shape}')
    return 0.5 * (logits + np.flip(flipped_logits, axis=-1))


# ---------------------------------------------------------------- zoom-in
def expand_bbox(box: Box,
                expansion_ratio: float,
                min_crop_size: Optional[int] = None) -> Box:
    """Scale a box about its centre, with a minimum side; Python rounding.

    RITM's arithmetic on inclusive edges: the centre is ``(rmin + rmax) /
    2``, the side ``ratio * (rmax - rmin + 1)``, the new inclusive edges
    ``round(centre -/+ side / 2)`` (half to even). The result may extend
    past the image (clip it afterwards).
    """
    rmin, rmax, cmin, cmax = box.to_inclusive()
    rcenter = 0.5 * (rmin + rmax)
    ccenter = 0.5 * (cmin + cmax)
    height = expansion_ratio * box.height
    width = expansion_ratio * box.width
    if min_crop_size is not None:
        height = max(height, min_crop_size)
        width = max(width, min_crop_size)
    return Box.from_inclusive(int(round(rcenter - 0.5 * height)),
                              int(round(rcenter + 0.5 * height)),
                              int(round(ccenter - 0.5 * width)),
                              int(round(ccenter + 0.5 * width)))


def get_object_roi(pred_mask: np.ndarray,
                   clicks: Sequence[Click],
                   expansion_ratio: float = 1.4,
                   min_crop_size: int = 200) -> Optional[Box]:
    """RITM's candidate ROI for the next zoom.

    Args:
        pred_mask (np.ndarray): (H, W) bool previous mask (prob > 0.5).
        clicks (Sequence[Click]): all clicks; positive ones join the box.
        expansion_ratio (float): side scale. Default: 1.4.
        min_crop_size (int): minimum side in pixels. Default: 200.

    Returns:
        Box | None: the clipped box, or None if ``pred_mask`` is empty
        (RITM then does not zoom).
    """
    pred_mask = np.array(pred_mask, dtype=bool)
    if pred_mask.ndim != 2:
        raise ValueError(f'get_object_roi: expected a 2-D mask, got shape '
                         f'{pred_mask.shape}')
    if not pred_mask.any():
        return None
    for click in clicks:
        if click.is_positive:
            pred_mask[click.y, click.x] = True
    box = expand_bbox(Box.from_mask(pred_mask), expansion_ratio,
                      min_crop_size)
    return box.clip(*pred_mask.shape)


def roi_target_shape(roi: Box, target_size: TargetSize) -> Tuple[int, int]:
    """(height, width) the ROI crop is resized to.

    Args:
        roi (Box): the crop.
        target_size (int | tuple): an int makes the longer side equal to it
            (keeping the aspect ratio, Python ``round``; also shrinks big
            crops); a ``(h, w)`` tuple is used as is (``fixedN`` mode).
    """
    if isinstance(target_size, (tuple, list)):
        return int(target_size[0]), int(target_size[1])
    scale = target_size / max(roi.height, roi.width)
    return int(round(roi.height * scale)), int(round(roi.width * scale))


def map_click_to_roi(click: Click, roi: Box,
                     crop_shape: Tuple[int, int]) -> Tuple[float, float]:
    """(y, x) of a click in the resized crop, as float (RITM's mapping).

    ``y' = crop_h * (y - y0) / roi.height``, the same for x.
    """
    crop_h, crop_w = crop_shape
    return (crop_h * (click.y - roi.y0) / roi.height,
            crop_w * (click.x - roi.x0) / roi.width)


def _interval_iou(a0: int, a1: int, b0: int, b1: int) -> float:
    inter = max(0, min(a1, b1) - max(a0, b0))
    union = max(1e-6, max(a1, b1) - min(a0, b0))
    return inter / union


def bbox_iou(box1: Box, box2: Box) -> float:
    """RITM's box IoU: product of the row and column interval IoUs."""
    return (_interval_iou(box1.y0, box1.y1, box2.y0, box2.y1) *
            _interval_iou(box1.x0, box1.x1, box2.x0, box2.x1))


def roi_contains_positive_clicks(roi: Box, clicks: Sequence[Click]) -> bool:
    """Whether every positive click is inside ``roi`` minus its last row and
    column (RITM's ``check_object_roi`` compares with its inclusive max
    edges exclusively)."""
    return all(roi.y0 <= c.y < roi.y1 - 1 and roi.x0 <= c.x < roi.x1 - 1
               for c in clicks if c.is_positive)


def update_roi(old_roi: Optional[Box],
               new_roi: Box,
               clicks: Sequence[Click],
               recompute_thresh_iou: float = 0.5) -> Box:
    """RITM's rule for keeping or replacing the zoom ROI.

    The new ROI replaces the old one when there is no old ROI, a positive
    click falls outside the old one, or their box IoU is below
    ``recompute_thresh_iou``; otherwise the old ROI is kept.
    """
    if (old_roi is None or not roi_contains_positive_clicks(old_roi, clicks)
            or bbox_iou(new_roi, old_roi) < recompute_thresh_iou):
        return new_roi
    return old_roi


class RitmZoomIn:
    """RITM's ZoomIn state for one object: which crop each click sees.

    Args:
        target_size: longer side of the resized crop (or a fixed (h, w)).
        skip_clicks: the first ``skip_clicks`` clicks see the whole image
            (RITM's ``cvpr`` mode: 1). Must be >= 1: the ``fixedN`` modes
            (``skip_clicks=-1``) are not implemented.
        expansion_ratio, min_crop_size: ROI expansion (see
            :func:`get_object_roi`).
        recompute_thresh_iou: see :func:`update_roi`.
        prob_thresh: the previous prediction is ``prob > prob_thresh``.
    """

    def __init__(self,
                 target_size: TargetSize = 400,
                 skip_clicks: int = 1,
                 expansion_ratio: float = 1.4,
                 min_crop_size: int = 200,
                 recompute_thresh_iou: float = 0.5,
                 prob_thresh: float = 0.5) -> None:
        if int(skip_clicks) != skip_clicks or skip_clicks < 1:
            raise ValueError(f'zoom_in: skip_clicks must be an int >= 1 '
                             f"(RITM's cvpr mode), got {skip_clicks!r}")
        if not expansion_ratio > 0 or not min_crop_size >= 1:
            raise ValueError(f'zoom_in: need expansion_ratio > 0 and '
                             f'min_crop_size >= 1, got {expansion_ratio}, '
                             f'{min_crop_size}')
        sizes = target_size if isinstance(target_size,
                                          (tuple, list)) else [target_size]
        if any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f'zoom_in: target_size must be a positive int '
                             f'or (h, w), got {target_size!r}')
        self.target_size = (tuple(target_size) if isinstance(
            target_size, (tuple, list)) else int(target_size))
        self.skip_clicks = int(skip_clicks)
        self.expansion_ratio = float(expansion_ratio)
        self.min_crop_size = int(min_crop_size)
        self.recompute_thresh_iou = float(recompute_thresh_iou)
        self.prob_thresh = float(prob_thresh)
        self.roi: Optional[Box] = None

    def reset(self) -> None:
        """Forget the ROI (a new object)."""
        self.roi = None

    def view(self, prev_mask: Optional[np.ndarray],
             clicks: Sequence[Click]) -> Optional[Box]:
        """The crop of the next prediction; updates the kept ROI.

        Args:
            prev_mask: (H, W) bool ``prob > prob_thresh`` of the previous
                prediction (None before the first).
            clicks: all clicks, the new one included.

        Returns:
            Box | None: the crop, or None for the whole image (the first
            ``skip_clicks`` clicks, or an empty previous prediction; there
            RITM would paste the whole-image answer into a stale ROI, here
            the whole image is used and the ROI kept for later).
        """
        if len(clicks) <= self.skip_clicks or prev_mask is None:
            return None
        candidate = get_object_roi(prev_mask, clicks, self.expansion_ratio,
                                   self.min_crop_size)
        if candidate is None:
            return None
        self.roi = update_roi(self.roi, candidate, clicks,
                              self.recompute_thresh_iou)
        return self.roi
