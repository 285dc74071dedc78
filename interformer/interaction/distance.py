"""Exact Euclidean distance transform of an error mask, as the clickers use it.

Both reference clickers (RITM and the official InterFormer) pad the error
mask with one ring of zeros, run ``cv2.distanceTransform(mask, DIST_L2,
DIST_MASK_PRECISE)`` and crop the ring off. OpenCV treats everything outside
the array as non-zero, so without the ring an error region touching the
image border would get huge distances there; with it, the image border acts
as "non-error" (``evaluation.md`` §3.1, TV1).

:func:`padded_distance_transform` is that reference computation on the whole
image. :func:`bbox_distance_transform` computes the same transform only on
the bounding box of the mask plus a one-pixel zero ring, which is much
cheaper for small error regions. Why the two agree:

The precise DT gives, for every non-zero pixel ``p``, the Euclidean distance
to the nearest zero pixel. Let ``B = [r0, r1] x [c0, c1]`` be the bounding
box of the non-zero pixels, and ``R`` the ring around it (rows ``r0 - 1``,
``r1 + 1`` and columns ``c0 - 1``, ``c1 + 1``). Every pixel of the padded
full image outside ``B`` is zero, and so is every pixel of ``R`` in the
cropped array. Take any zero pixel ``q`` outside ``B`` and clamp it into
``B + R``: ``q' = (clip(q_y, r0 - 1, r1 + 1), clip(q_x, c0 - 1, c1 + 1))``.
At least one coordinate of ``q`` lies outside ``B``'s range, so the clamped
coordinate lands on ``R`` and ``q'`` is a zero pixel of the crop. Since
``p`` lies inside ``B`` and clamping to an interval that contains ``p_y``
(``p_x``) never increases ``|p_y - q_y|`` (``|p_x - q_x|``),
``|p - q'| <= |p - q|``. So a nearest zero pixel of the whole padded image
can always be found inside the crop (the zero pixels inside ``B`` are shared
by both), and OpenCV's "outside is non-zero" rule does not matter for the
crop either (the same clamping puts a ring pixel before any outside pixel).
The **squared** distances, integers, are therefore identical.

The float32 values are ``sqrt(n)`` of those integers ``n``, but OpenCV's
vectorised square root is not always correctly rounded: about 0.2 % of the
values are 1 ulp off, depending on the pixel's column in the array. So the
crop and the full image can differ by 1 ulp at a pixel, and so can two
pixels at the same true distance within one call. :func:`squared_distance`
recovers the exact integer ``n`` from such a value; the clicker compares
those, so ties are true ties (``tests/test_interaction/
test_click_distance.py`` checks the integers for equality on many random
masks). Crops whose distances could exceed :data:`MAX_FLOAT32_DISTANCE`
(where 1 ulp stops being small against the gap between ``sqrt(n)`` and
``sqrt(n + 1)``) use scipy's float64 EDT instead, which is exact.
"""
from typing import Optional, Tuple

import cv2
import numpy as np
from scipy import ndimage

from .geometry import Box

__all__ = [
    'padded_distance_transform', 'bbox_distance_transform',
    'squared_distance', 'MAX_FLOAT32_DISTANCE'
]

# cv2.DIST_MASK_PRECISE == 0: the exact Euclidean transform RITM calls with
# maskSize 0.
_DIST_MASK = cv2.DIST_MASK_PRECISE
#: Largest distance for which a float32 ``sqrt(n)`` that is 1 ulp off still
#: identifies ``n``: the relative gap to ``sqrt(n +- 1)`` is about
#: ``1 / (2 n)`` (5e-7 at 1000 px), against 1.2e-7 per ulp.
MAX_FLOAT32_DISTANCE = 1000


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    """A 0/1 uint8 view (bool input) or copy of a 2-D mask."""
    if mask.dtype == np.bool_:
        return mask.view(np.uint8)
    return (mask != 0).astype(np.uint8)


def padded_distance_transform(mask: np.ndarray) -> np.ndarray:
    """Reference DT of a whole mask with the one-pixel zero padding.

    This is exactly what the reference clickers compute (OpenCV float32).

    Args:
        mask (np.ndarray): (H, W) bool (or 0/1) error mask.

    Returns:
        np.ndarray: (H, W) float32 distance of every mask pixel to the
        nearest non-mask pixel or to the image border ring; 0 off the mask.
    """
    padded = np.pad(_as_uint8(mask), 1, mode='constant')
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, _DIST_MASK)
    return dist[1:-1, 1:-1]


def bbox_distance_transform(
        mask: np.ndarray) -> Optional[Tuple[np.ndarray, Tuple[int, int]]]:
    """The padded DT restricted to the bounding box of the mask.

    The squared distances equal those of ``padded_distance_transform(mask)
    [box.slices]`` for ``box = Box.from_mask(mask)`` (see the module
    docstring for the proof); every value outside the box is 0.

    Args:
        mask (np.ndarray): (H, W) bool (or 0/1) error mask.

    Returns:
        tuple | None: ``(dist, (y0, x0))`` where ``dist`` is the DT of the
        box, shape ``(box.height, box.width)``: float32 from OpenCV, or
        exact float64 when the box's shorter side exceeds
        ``2 * MAX_FLOAT32_DISTANCE``; ``(y0, x0)`` is its top-left corner in
        image pixels. None if the mask is empty.
    """
    box = Box.from_mask(np.asarray(mask))
    if box is None:
        return None
    crop = _as_uint8(mask[box.slices])
    padded = cv2.copyMakeBorder(np.ascontiguousarray(crop),
                                1,
                                1,
                                1,
                                1,
                                cv2.BORDER_CONSTANT,
                                value=0)
    # No distance can exceed half the shorter side (+1 for the ring).
    if min(crop.shape) <= 2 * MAX_FLOAT32_DISTANCE - 2:
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, _DIST_MASK)
    else:
        dist = ndimage.distance_transform_edt(padded)
    return dist[1:-1, 1:-1], (box.y0, box.x0)


def squared_distance(value: float) -> int:
    """The exact integer squared distance behind a DT value.

    Args:
        value (float): a value of :func:`bbox_distance_transform` or
            :func:`padded_distance_transform` (up to
            ``MAX_FLOAT32_DISTANCE`` for float32 input).

    Returns:
        int: ``n`` such that the true distance is ``sqrt(n)``.
    """
    return int(round(float(value)**2))
