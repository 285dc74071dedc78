"""DAVIS click-test set (345 instances)."""
import numpy as np
from mmseg.registry import DATASETS

from .base import GT_BACKGROUND, GT_OBJECT, FolderClickEvalDataset

__all__ = ['DAVISDataset', 'decode_davis_mask']


def decode_davis_mask(raw: np.ndarray) -> np.ndarray:
    """RITM's DAVIS rule: the maximum over the channels, any value > 0 is the
    object; there is no ignore label.

    Args:
        raw: (H, W, C) uint8 mask as read by OpenCV.

    Returns:
        np.ndarray: (H, W) int8 with 1 / 0.
    """
    value = raw.max(axis=2)
    gt = np.full(value.shape, GT_BACKGROUND, np.int8)
    gt[value > 0] = GT_OBJECT
    return gt


@DATASETS.register_module()
class DAVISDataset(FolderClickEvalDataset):
    """DAVIS: 345 instances (RITM release: ``img/`` + ``gt/``, one mask per
    instance, any non-zero value is the object). The FocusCut release
    (``gt/<name>#001.png``, all objects of a frame merged, 1 object /
    255 void) is read too; it is the one the InterFormer paper used.
    """

    RITM_DIRS = (('img', 'gt'), ('images', 'masks'))
    RITM_RULE = '0 = background, any value > 0 = object (max over channels)'

    def decode_ritm_mask(self, raw: np.ndarray) -> np.ndarray:
        return decode_davis_mask(raw)
