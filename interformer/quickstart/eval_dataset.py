"""Click-test adapter over a COCO-panoptic split (e.g. the synthetic val).

Each *thing* segment of at least ``min_area`` pixels is one click-test
instance (``get_sample(i) -> dict(image, gt, name)``); unlabelled pixels
(segment id 0) are ignored (-1), every other segment is background.
"""
import os.path as osp
from typing import List, Optional

import cv2
import numpy as np
from mmseg.registry import DATASETS

from ..datasets.click_eval.base import (
    GT_BACKGROUND,
    GT_IGNORE,
    GT_OBJECT,
    ClickEvalDataset,
)
from ..datasets.image_check import check_image_file
from .synthetic import load_panoptic, panoptic_paths, rgb_to_id

__all__ = ['SyntheticPanopticEvalDataset', 'spread_indices']

VOID_ID = 0


def spread_indices(total: int, count: Optional[int]) -> List[int]:
    """``count`` indices spread evenly over ``range(total)`` (all if None)."""
    if count is None or count >= total:
        return list(range(total))
    if count < 1:
        raise ValueError(f'count must be >= 1, got {count}')
    return sorted(set(np.linspace(0, total - 1, count).round().astype(int)))


@DATASETS.register_module()
class SyntheticPanopticEvalDataset(ClickEvalDataset):
    """Thing segments of a COCO-panoptic split as click-test instances.

    Args:
        data_root: the dataset root (COCO-2017 layout, see
            :func:`interformer.quickstart.synthetic.panoptic_paths`).
        split: ``'val'`` (default) or ``'train'``.
        min_area: smallest segment (pixels) used as an instance.
        things_only: skip stuff segments (``isthing == 0``).
        max_instances: keep this many instances, spread evenly over the
            split (None = all).
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'val',
                 min_area: int = 100,
                 things_only: bool = True,
                 max_instances: Optional[int] = None) -> None:
        super().__init__(data_root)
        paths = panoptic_paths(self.data_root, split)
        coco = load_panoptic(paths['ann_file'])
        isthing = {c['id']: c.get('isthing', 1) for c in coco['categories']}
        images = {img['id']: img for img in coco['images']}
        instances = []
        for ann in coco['annotations']:
            if ann['image_id'] not in images:
                raise ValueError(f'{paths["ann_file"]}: annotation '
                                 f'{ann["file_name"]} refers to unknown '
                                 f'image id {ann["image_id"]}')
            img = images[ann['image_id']]
            stem = osp.splitext(img['file_name'])[0]
            for seg in ann['segments_info']:
                if seg['area'] < min_area or seg.get('iscrowd', 0):
                    continue
                if things_only and not isthing.get(seg['category_id'], 1):
                    continue
                instances.append(dict(
                    name=f'{stem}#{seg["id"]}',
                    img_path=osp.join(paths['img_dir'], img['file_name']),
                    gt_path=osp.join(paths['seg_dir'], ann['file_name']),
                    segment_id=int(seg['id'])))
        if not instances:
            raise ValueError(f'{paths["ann_file"]}: no segment with area >= '
                             f'{min_area} to evaluate on')
        self.split = split
        self.instances = [
            instances[i] for i in spread_indices(len(instances),
                                                 max_instances)
        ]

    def load_gt(self, instance: dict) -> np.ndarray:
        path = instance['gt_path']
        check_image_file(path)  # missing / truncated: an error naming it
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'cannot read panoptic PNG {path}')
        ids = rgb_to_id(bgr[..., ::-1])
        gt = np.full(ids.shape, GT_BACKGROUND, np.int8)
        gt[ids == VOID_ID] = GT_IGNORE
        gt[ids == instance['segment_id']] = GT_OBJECT
        return gt
