"""Geometry of RITM's test-time transforms: horizontal flip and ZoomIn.

Framework-free (numpy) helpers that reproduce RITM's ``isegm/inference/
transforms/{flip,zoom_in}.py`` exactly (``evaluation.md`` §9, TV9, TV11), for
an evaluator that wants the field-standard predictor pipeline. Boxes are
``(rmin, rmax, cmin, cmax)`` = (row min, row max, column min, column max),
all **inclusive**, in original-image pixels; clicks are (y, x).

Flip (TV9): a click at column x maps to ``W - 1 - x``; the logits of the
mirrored image are flipped back and averaged with the plain ones *before*
the sigmoid.

ZoomIn (TV11), from click ``skip_clicks + 1`` on:

1. ROI = bbox of (previous prob > 0.5) plus every positive click.
2. Expand it about its centre by ``expansion_ratio`` per side, with at least
   ``min_crop_size`` pixels per side, round with Python ``round`` (half to
   even), clamp to the image.
3. Keep the old ROI unless there is none, a positive click falls outside it
   (max edges exclusive) or the box IoU of new and old ROI is below
   ``recompute_thresh_iou``.
4. Resize the crop so that its longer side is ``target_size`` (this also
   shrinks large crops); clicks map to ``crop_h * (y - rmin) / roi_h``.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from interformer.interaction.clicks import Click

__all__ = [
    'flip_x', 'flip_clicks', 'merge_flipped_logits', 'get_bbox_from_mask',
    'expand_bbox', 'clamp_bbox', 'get_object_roi', 'roi_target_shape',
    'map_click_to_roi', 'bbox_iou', 'roi_contains_positive_clicks',
    'update_roi', 'ZOOM_IN_DEFAULTS'
]

BBox = Tuple[int, int, int, int]

#: RITM ``cvpr`` mode ZoomIn settings (target_size 600 for DAVIS).
ZOOM_IN_DEFAULTS = dict(target_size=400,
                        skip_clicks=1,
                        expansion_ratio=1.4,
                        min_crop_size=200,
                        recompute_thresh_iou=0.5,
                        prob_thresh=0.5)


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


def get_bbox_from_mask(mask: np.ndarray) -> Optional[BBox]:
    """Inclusive ``(rmin, rmax, cmin, cmax)`` of a 2-D mask; None if empty."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f'get_bbox_from_mask: expected a 2-D mask, got '
                         f'shape {mask.shape}')
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def expand_bbox(bbox: BBox,
                expansion_ratio: float,
                min_crop_size: Optional[int] = None) -> BBox:
    """Scale a box about its centre, with a minimum side; Python rounding.

    Side lengths count pixels (``rmax - rmin + 1``); the new edges are
    ``round(centre -/+ side / 2)`` with Python's half-to-even ``round``, so
    the result may extend past the image (clamp it afterwards).
    """
    rmin, rmax, cmin, cmax = bbox
    rcenter = 0.5 * (rmin + rmax)
    ccenter = 0.5 * (cmin + cmax)
    height = expansion_ratio * (rmax - rmin + 1)
    width = expansion_ratio * (cmax - cmin + 1)
    if min_crop_size is not None:
        height = max(height, min_crop_size)
        width = max(width, min_crop_size)
    return (int(round(rcenter - 0.5 * height)),
            int(round(rcenter + 0.5 * height)),
            int(round(ccenter - 0.5 * width)),
            int(round(ccenter + 0.5 * width)))


def clamp_bbox(bbox: BBox, height: int, width: int) -> BBox:
    """Clamp an inclusive box to an ``height x width`` image."""
    rmin, rmax, cmin, cmax = bbox
    return (max(0, rmin), min(height - 1,
                              rmax), max(0, cmin), min(width - 1, cmax))


def get_object_roi(pred_mask: np.ndarray,
                   clicks: Sequence[Click],
                   expansion_ratio: float = 1.4,
                   min_crop_size: int = 200) -> Optional[BBox]:
    """RITM's candidate ROI for the next zoom.

    Args:
        pred_mask (np.ndarray): (H, W) bool previous mask (prob > 0.5).
        clicks (Sequence[Click]): all clicks; positive ones join the box.
        expansion_ratio (float): side scale. Default: 1.4.
        min_crop_size (int): minimum side in pixels. Default: 200.

    Returns:
        tuple | None: the clamped inclusive box, or None if ``pred_mask`` is
        empty (RITM then does not zoom).
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
    bbox = expand_bbox(get_bbox_from_mask(pred_mask), expansion_ratio,
                       min_crop_size)
    return clamp_bbox(bbox, *pred_mask.shape)


def roi_target_shape(roi: BBox, target_size) -> Tuple[int, int]:
    """(height, width) the ROI crop is resized to.

    Args:
        roi (tuple): inclusive ``(rmin, rmax, cmin, cmax)``.
        target_size (int | tuple): an int makes the longer side equal to it
            (keeping the aspect ratio, Python ``round``; also shrinks big
            crops); a ``(h, w)`` tuple is used as is (``fixedN`` mode).
    """
    rmin, rmax, cmin, cmax = roi
    height, width = rmax - rmin + 1, cmax - cmin + 1
    if isinstance(target_size, tuple):
        return int(target_size[0]), int(target_size[1])
    scale = target_size / max(height, width)
    return int(round(height * scale)), int(round(width * scale))


def map_click_to_roi(click: Click, roi: BBox,
                     crop_shape: Tuple[int, int]) -> Tuple[float, float]:
    """(y, x) of a click in the resized crop, as float (RITM's mapping).

    ``y' = crop_h * (y - rmin) / (rmax - rmin + 1)``, the same for x.
    """
    rmin, rmax, cmin, cmax = roi
    crop_h, crop_w = crop_shape
    return (crop_h * (click.y - rmin) / (rmax - rmin + 1),
            crop_w * (click.x - cmin) / (cmax - cmin + 1))


def _segment_iou(a: int, b: int, c: int, d: int) -> float:
    inter = max(0, min(b, d) - max(a, c) + 1)
    union = max(1e-6, max(b, d) - min(a, c) + 1)
    return inter / union


def bbox_iou(box1: BBox, box2: BBox) -> float:
    """RITM's box IoU: product of the row and column interval IoUs."""
    return (_segment_iou(box1[0], box1[1], box2[0], box2[1]) *
            _segment_iou(box1[2], box1[3], box2[2], box2[3]))


def roi_contains_positive_clicks(roi: BBox, clicks: Sequence[Click]) -> bool:
    """Whether every positive click is inside ``roi`` (max edges exclusive,
    as in RITM's ``check_object_roi``)."""
    rmin, rmax, cmin, cmax = roi
    return all(rmin <= c.y < rmax and cmin <= c.x < cmax for c in clicks
               if c.is_positive)


def update_roi(old_roi: Optional[BBox],
               new_roi: BBox,
               clicks: Sequence[Click],
               recompute_thresh_iou: float = 0.5) -> BBox:
    """RITM's rule for keeping or replacing the zoom ROI.

    The new ROI replaces the old one when there is no old ROI, a positive
    click falls outside the old one, or their box IoU is below
    ``recompute_thresh_iou``; otherwise the old ROI is kept.
    """
    if (old_roi is None or not roi_contains_positive_clicks(old_roi, clicks)
            or bbox_iou(new_roi, old_roi) < recompute_thresh_iou):
        return new_roi
    return old_roi
