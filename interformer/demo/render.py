"""Drawing the masks for the page: a transparent RGBA overlay.

The page draws the image, then this overlay, then the click markers. Finished
objects are tinted in their palette colour; the current object is tinted more
strongly and outlined, so it stands out while it is being edited.
"""
from typing import Sequence

import cv2
import numpy as np

__all__ = ['PALETTE', 'object_color', 'render_overlay']

#: Distinct RGB colours; object k (1-based) uses PALETTE[(k - 1) % len].
PALETTE = np.array(
    [[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0],
     [186, 85, 211], [0, 206, 209], [255, 140, 0], [240, 128, 128],
     [154, 205, 50], [106, 90, 205], [255, 105, 180], [46, 139, 87]],
    dtype=np.uint8)
FINISHED_ALPHA = 110
CURRENT_ALPHA = 140
OUTLINE_ALPHA = 255
OUTLINE_WIDTH = 2


def object_color(index: int) -> np.ndarray:
    """RGB colour (uint8, shape (3,)) of object ``index`` (1-based)."""
    if index < 1:
        raise ValueError(f'object index is 1-based, got {index}')
    return PALETTE[(index - 1) % len(PALETTE)]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Inner boundary band of a bool mask, ``OUTLINE_WIDTH`` pixels wide."""
    kernel = np.ones((2 * OUTLINE_WIDTH + 1, ) * 2, np.uint8)
    eroded = cv2.erode(mask.astype(np.uint8), kernel,
                       borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~eroded.astype(bool)


def render_overlay(finished: Sequence[np.ndarray],
                   current: np.ndarray) -> np.ndarray:
    """Paint the objects into a transparent RGBA image.

    Args:
        finished: (H, W) bool masks of the finished objects, objects 1..n.
            Later objects are painted over earlier ones.
        current: (H, W) bool mask of the object being edited (object n+1).

    Returns:
        np.ndarray: (H, W, 4) uint8 RGBA, alpha 0 where there is no object.
    """
    height, width = current.shape
    overlay = np.zeros((height, width, 4), np.uint8)
    for index, mask in enumerate(finished, start=1):
        overlay[mask, :3] = object_color(index)
        overlay[mask, 3] = FINISHED_ALPHA
    if current.any():
        color = object_color(len(finished) + 1)
        overlay[current, :3] = color
        overlay[current, 3] = CURRENT_ALPHA
        edge = _outline(current)
        overlay[edge, :3] = color
        overlay[edge, 3] = OUTLINE_ALPHA
    return overlay
