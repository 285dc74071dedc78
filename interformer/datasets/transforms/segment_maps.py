"""Segment-id maps: the per-image label format of the training datasets.

A segment-id map is an ``int32`` array of shape ``(H, W)`` in which every
candidate object of the image has its own id:

* ``NO_SEGMENT`` (0): pixel belongs to no annotated segment (background);
* ``IGNORE_INDEX`` (255): pixel is ignored by the loss and never sampled;
* every other value: one segment. Ids are assigned 1, 2, 3, ... in the
  order the segments are placed, skipping 255 so that an image with many
  segments never collides with the ignore value.

The functions here are pure numpy / pycocotools and are shared by
:class:`~interformer.datasets.transforms.LoadSegmentIdMap` and the tests.
"""
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils

NO_SEGMENT = 0
IGNORE_INDEX = 255
ID_DTYPE = np.int32
# (R, G, B) weights of the COCO panoptic PNG encoding: id = R + 256 G + 256² B
PANOPTIC_RGB_WEIGHTS = (1, 256, 256 * 256)
# a polygon needs at least three (x, y) points
MIN_POLYGON_COORDS = 6

__all__ = [
    'NO_SEGMENT', 'IGNORE_INDEX', 'ID_DTYPE', 'segment_ids', 'rgb_to_id',
    'panoptic_to_id_map', 'segmentation_to_mask', 'paint_instances'
]


def segment_ids(start: int = 1) -> Iterator[int]:
    """Yield segment ids ``start, start+1, ...`` skipping ``IGNORE_INDEX``.

    Args:
        start (int): First id. Default: 1.

    Yields:
        int: The next free segment id.
    """
    value = start
    while True:
        if value != IGNORE_INDEX and value != NO_SEGMENT:
            yield value
        value += 1


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Decode a COCO panoptic PNG: ``id = R + 256 * G + 256**2 * B``.

    Args:
        rgb (np.ndarray): ``(H, W, 3)`` uint8 array in **RGB** channel order.

    Returns:
        np.ndarray: ``(H, W)`` int64 panoptic segment ids (0 = unlabeled).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError('a COCO panoptic PNG must be an (H, W, 3) RGB '
                         f'image, got shape {rgb.shape}')
    rgb = rgb.astype(np.int64)
    weights = np.asarray(PANOPTIC_RGB_WEIGHTS, dtype=np.int64)
    return rgb @ weights


def panoptic_to_id_map(panoptic_ids: np.ndarray,
                       segment_list: Sequence[int]) -> np.ndarray:
    """Re-index panoptic ids to consecutive segment ids.

    The i-th entry of ``segment_list`` becomes segment id ``i + 1`` (255
    skipped, see :func:`segment_ids`). Pixels whose panoptic id is not in
    ``segment_list`` (e.g. 0, the unlabeled VOID area) become ``NO_SEGMENT``.

    Args:
        panoptic_ids (np.ndarray): ``(H, W)`` ids from :func:`rgb_to_id`.
        segment_list (Sequence[int]): Panoptic ids of the annotated segments
            (``segments_info[*]['id']``), in annotation order.

    Returns:
        np.ndarray: ``(H, W)`` int32 segment-id map.
    """
    values, inverse = np.unique(panoptic_ids, return_inverse=True)
    new_id_of = dict(zip(segment_list, segment_ids()))
    table = np.array([new_id_of.get(int(v), NO_SEGMENT) for v in values],
                     dtype=ID_DTYPE)
    return table[inverse.reshape(panoptic_ids.shape)]


def segmentation_to_mask(segmentation: Union[list, dict], height: int,
                         width: int) -> np.ndarray:
    """Rasterise a COCO/LVIS ``segmentation`` with pycocotools.

    Handles the three COCO forms exactly like ``COCO.annToRLE`` /
    ``LVIS.ann_to_rle``: a list of polygons ``[[x0, y0, x1, y1, ...], ...]``
    (parts are merged), an uncompressed RLE ``{'size': [h, w], 'counts':
    [int, ...]}`` and a compressed RLE (``counts`` a str or bytes).
    Polygons with fewer than three points are dropped (pycocotools would
    read a 4-value list as a box).

    Args:
        segmentation (list | dict): The annotation's ``segmentation``.
        height (int): Image height H.
        width (int): Image width W.

    Returns:
        np.ndarray: ``(H, W)`` bool mask.
    """
    if isinstance(segmentation, list):
        polygons = [
            [float(v) for v in poly] for poly in segmentation
            if len(poly) >= MIN_POLYGON_COORDS and len(poly) % 2 == 0
        ]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(
            mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and 'counts' in segmentation:
        if isinstance(segmentation['counts'], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle['counts'], str):
                rle['counts'] = rle['counts'].encode('ascii')
        if tuple(rle['size']) != (height, width):
            raise ValueError(f'RLE size {list(rle["size"])} does not match '
                             f'the image size [{height}, {width}]')
    else:
        raise ValueError('segmentation must be a list of polygons or an RLE '
                         f'dict with "counts", got {type(segmentation)}')
    return mask_utils.decode(rle).astype(bool)


def paint_instances(masks: Iterable[np.ndarray],
                    height: int,
                    width: int,
                    overlap_thr: Optional[float] = 0.5,
                    ignore_masks: Iterable[np.ndarray] = ()) -> np.ndarray:
    """Stack instance masks into a segment-id map, later masks on top.

    A mask is skipped when it is empty, or (with ``overlap_thr`` set) when
    more than ``overlap_thr`` of it is already covered by placed segments,
    or when it would cover more than ``overlap_thr`` of the still visible
    area of any placed segment. Accepted masks get ids 1, 2, ... (255
    skipped) and overwrite what lies below them. Finally, pixels of
    ``ignore_masks`` (e.g. COCO crowd regions) that no segment covers are
    set to ``IGNORE_INDEX``.

    Args:
        masks (Iterable[np.ndarray]): ``(H, W)`` bool masks in paint order.
        height (int): Map height H.
        width (int): Map width W.
        overlap_thr (float, optional): Overlap rule threshold; None turns
            the rule off. Default: 0.5.
        ignore_masks (Iterable[np.ndarray]): ``(H, W)`` bool masks of
            regions to ignore. Default: ().

    Returns:
        np.ndarray: ``(H, W)`` int32 segment-id map.
    """
    id_map = np.zeros((height, width), dtype=ID_DTYPE)
    visible: List[int] = [0]  # visible[i] = visible area of the i-th placed
    placed_ids: List[int] = [NO_SEGMENT]
    new_ids = segment_ids()
    for mask in masks:
        area = int(mask.sum())
        if area == 0:
            continue
        # index of the placed segment under each masked pixel (0 = none)
        below = np.searchsorted(placed_ids, id_map[mask])
        covered = np.bincount(below, minlength=len(placed_ids))
        if overlap_thr is not None:
            if (area - covered[0]) / area > overlap_thr:
                continue
            placed = np.asarray(visible[1:], dtype=np.float64)
            hidden = covered[1:] / np.maximum(placed, 1)
            if np.any(hidden > overlap_thr):
                continue
        for index in np.flatnonzero(covered[1:]) + 1:
            visible[index] -= int(covered[index])
        new_id = next(new_ids)
        placed_ids.append(new_id)
        visible.append(area)
        id_map[mask] = new_id
    for mask in ignore_masks:
        id_map[mask & (id_map == NO_SEGMENT)] = IGNORE_INDEX
    return id_map
