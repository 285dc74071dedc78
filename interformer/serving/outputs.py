"""Mask encodings the service returns: PNG, COCO RLE, polygons.

Polygons are OpenCV outer contours simplified with ``cv2.approxPolyDP``
(``tolerance`` in pixels; 0 keeps every contour vertex). Their points are
(y, x) like every coordinate of the project's API; the adapters convert to
the (x, y) of annotation tools at their boundary.
"""
import base64
from typing import Dict, List, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .images import encode_png

__all__ = ['OUTPUTS', 'mask_to_rle', 'rle_to_mask', 'mask_to_polygons',
           'encode_outputs']

OUTPUTS = ('png', 'rle', 'polygons')


def mask_to_rle(mask: np.ndarray) -> Dict:
    """COCO RLE ``{"size": [H, W], "counts": str}`` of a (H, W) mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(s) for s in rle['size']],
            'counts': rle['counts'].decode('ascii')}


def rle_to_mask(rle: Dict) -> np.ndarray:
    """(H, W) bool mask from a COCO RLE (compressed string counts)."""
    counts = rle['counts']
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    return mask_utils.decode({'size': list(rle['size']),
                              'counts': counts}).astype(bool)


def mask_to_polygons(mask: np.ndarray,
                     tolerance: float = 1.0) -> List[List[List[int]]]:
    """Outer contours of a (H, W) mask as polygons of (y, x) points.

    Args:
        mask: (H, W) bool.
        tolerance: ``approxPolyDP`` epsilon in pixels (>= 0).

    Returns:
        list: one polygon (list of ``[y, x]``, at least 3 points) per
        connected region, largest area first.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8),
                                   cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)
    polygons = []
    for contour in contours:
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, float(tolerance), True)
        points = contour.reshape(-1, 2)
        if len(points) >= 3:
            polygons.append([[int(x_y[1]), int(x_y[0])] for x_y in points])
    return polygons


def encode_outputs(mask: np.ndarray, outputs: Sequence[str],
                   tolerance: float = 1.0) -> Dict:
    """The requested encodings of one mask, plus its area."""
    out: Dict = {'area': int(mask.sum())}
    if 'png' in outputs:
        png = encode_png(mask.astype(np.uint8) * 255)
        out['png'] = base64.b64encode(png).decode('ascii')
    if 'rle' in outputs:
        out['rle'] = mask_to_rle(mask)
    if 'polygons' in outputs:
        out['polygons'] = mask_to_polygons(mask, tolerance)
    return out
