"""Pick the object of a training sample from its segment-id map."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.registry import TRANSFORMS

from .segment_maps import IGNORE_INDEX, NO_SEGMENT

OBJECT = 1
BACKGROUND = 0

__all__ = ['ObjectSampler']


@TRANSFORMS.register_module()
class ObjectSampler(BaseTransform):
    """Turn a segment-id map into a binary object mask.

    One segment is chosen **uniformly among the segment ids present** in
    ``gt_seg_map`` (not weighted by area), using numpy's global RNG like
    mmseg's random transforms. The map becomes uint8 with ``1`` = chosen
    object, ``0`` = everything else and ``ignore_index`` kept as is.

    If no segment qualifies (e.g. the crop holds only background), the
    transform returns ``None``, so the dataset retries another index.

    Required keys: ``gt_seg_map`` (H x W segment ids, 0 = no segment).
    Modified keys: ``gt_seg_map`` (uint8 H x W: 1 / 0 / ignore_index).
    Added keys: ``object_id`` (int, the chosen segment id).

    Args:
        min_area_ratio (float): A segment is a candidate only if its area in
            the map is at least this fraction of the map area, and at least
            one pixel. Default: 0.0 (any segment present).
        ignore_index (int): Ignore value, never sampled. Default: 255.
    """

    def __init__(self,
                 min_area_ratio: float = 0.0,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if not 0.0 <= min_area_ratio < 1.0:
            raise ValueError('ObjectSampler: min_area_ratio must be in '
                             f'[0, 1), got {min_area_ratio}')
        self.min_area_ratio = float(min_area_ratio)
        self.ignore_index = int(ignore_index)

    def candidate_ids(self, seg_map: np.ndarray) -> np.ndarray:
        """Segment ids of ``seg_map`` that may be sampled.

        Args:
            seg_map (np.ndarray): ``(H, W)`` segment-id map.

        Returns:
            np.ndarray: Sorted candidate ids (may be empty).
        """
        ids, areas = np.unique(seg_map, return_counts=True)
        min_area = max(1.0, self.min_area_ratio * seg_map.size)
        keep = ((ids != NO_SEGMENT) & (ids != self.ignore_index) &
                (areas >= min_area))
        return ids[keep]

    @cache_randomness
    def _choose(self, num_candidates: int) -> int:
        return int(np.random.randint(num_candidates))

    def transform(self, results: dict) -> dict:
        """Binarise ``results['gt_seg_map']`` around one random segment.

        Args:
            results (dict): Result dict with ``gt_seg_map``.

        Returns:
            dict | None: The results, or None when no segment qualifies.
        """
        seg_map = results['gt_seg_map']
        candidates = self.candidate_ids(seg_map)
        if candidates.size == 0:
            return None
        object_id = int(candidates[self._choose(candidates.size)])
        binary = np.full(seg_map.shape, BACKGROUND, dtype=np.uint8)
        binary[seg_map == object_id] = OBJECT
        binary[seg_map == self.ignore_index] = self.ignore_index
        results['gt_seg_map'] = binary
        results['object_id'] = object_id
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_area_ratio='
                f'{self.min_area_ratio}, ignore_index={self.ignore_index})')
