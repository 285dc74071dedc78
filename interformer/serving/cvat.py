"""CVAT interactor contract on the service's engine (nuclio function in
``deploy/cvat/interformer``; see docs/cvat.md).

CVAT's lambda manager sends ``{"image": <base64 frame>, "pos_points":
[[x, y], ...], "neg_points": [[x, y], ...], "obj_bbox": [[x1, y1], [x2, y2]]
| null}`` (points in (x, y) = (column, row), possibly fractional) and every
click resends the image: the engine's content-hash cache turns that into
one decode per click. The answer is CVAT's interactor shape ``{"mask": H x
W list of 0/1, "points": [[x, y], ...]}`` (the largest polygon).
"""
import base64
import binascii
from typing import Dict, List, Tuple

from .engine import ClickEngine, ObjectPrompt, PromptError
from .images import DEFAULT_MAX_PIXELS
from .outputs import mask_to_polygons

__all__ = ['handle_cvat_request', 'CvatRequestError']


class CvatRequestError(ValueError):
    """A request that does not follow CVAT's interactor shape (400)."""


def _points(body: Dict, key: str) -> List[Tuple[float, float]]:
    points = body.get(key) or []
    if not isinstance(points, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in points):
        raise CvatRequestError(f'{key} must be a list of [x, y]')
    try:
        return [(float(p[0]), float(p[1])) for p in points]
    except (TypeError, ValueError):
        raise CvatRequestError(f'{key} must hold numbers') from None


def handle_cvat_request(engine: ClickEngine, body: Dict,
                        max_pixels: int = DEFAULT_MAX_PIXELS,
                        polygon_tolerance: float = 1.0) -> Dict:
    """Answer one CVAT interactor request.

    Raises:
        CvatRequestError: malformed request; ``PromptError`` /
            ``UploadError`` for points outside or a bad image.
    """
    if not isinstance(body, dict) or not isinstance(body.get('image'), str):
        raise CvatRequestError('the request needs "image" (base64)')
    try:
        data = base64.b64decode(body['image'], validate=True)
    except (binascii.Error, ValueError):
        raise CvatRequestError('"image" is not valid base64') from None
    pos, neg = _points(body, 'pos_points'), _points(body, 'neg_points')
    encoded, _ = engine.encode_bytes(data, max_pixels)
    # CVAT sends positives then negatives without their order: positives
    # first (the model needs a positive click to start an object)
    clicks = [(int(y), int(x), True) for x, y in pos]
    clicks += [(int(y), int(x), False) for x, y in neg]
    box = None
    if body.get('obj_bbox'):
        bbox = _points(body, 'obj_bbox')
        if len(bbox) != 2:
            raise CvatRequestError('obj_bbox must be [[x1, y1], [x2, y2]]')
        (x1, y1), (x2, y2) = bbox
        box = (int(min(y1, y2)), int(min(x1, x2)), int(max(y1, y2)) + 1,
               int(max(x1, x2)) + 1)
    if not clicks and box is None:
        raise PromptError('CVAT sent no points and no box')
    [mask] = engine.segment(encoded, [ObjectPrompt(clicks, box=box)])
    polygons = mask_to_polygons(mask, polygon_tolerance)
    points = [[x, y] for y, x in polygons[0]] if polygons else []
    return {'mask': mask.astype('uint8').tolist(), 'points': points}
