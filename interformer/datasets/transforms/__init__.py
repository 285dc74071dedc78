"""Training transforms mmseg lacks: segment-id maps and the object sampler.

Everything else in the training pipeline (image loading, flip, crop,
photometric distortion, packing) is mmseg's / mmcv's own.
"""
from .geometric import PadToMinSize, RandomRescale
from .loading import LoadSegmentIdMap
from .object_sampler import ObjectSampler
from .segment_maps import (
                           IGNORE_INDEX,
                           NO_SEGMENT,
                           paint_instances,
                           panoptic_to_id_map,
                           rgb_to_id,
                           segmentation_to_mask,
)

__all__ = [
    'LoadSegmentIdMap', 'RandomRescale', 'PadToMinSize', 'ObjectSampler',
    'IGNORE_INDEX', 'NO_SEGMENT', 'rgb_to_id', 'panoptic_to_id_map',
    'segmentation_to_mask', 'paint_instances'
]
