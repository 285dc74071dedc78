"""GrabCut (50 instances) and Berkeley (100 instances) click-test sets."""
import numpy as np
from mmseg.registry import DATASETS

from .base import GT_BACKGROUND, GT_IGNORE, GT_OBJECT, FolderClickEvalDataset

__all__ = ['GrabCutDataset', 'BerkeleyDataset']

#: RITM's GrabCut/Berkeley rule on mask channel 0: 128 is the unlabelled
#: boundary band (ignored), anything above it is the object.
RITM_IGNORE_VALUE = 128
#: The values of the RITM releases' GrabCut / Berkeley masks.
RITM_MASK_VALUES = (0, RITM_IGNORE_VALUE, 255)
RITM_MASK_RULE = ('0 = background, 128 = ignore band, 255 = object '
                  '(channel 0)')


def decode_grabcut_mask(raw: np.ndarray) -> np.ndarray:
    """RITM's rule: channel 0 (blue for colour masks); 128 -> ignore,
    > 128 -> object, the rest background.

    Args:
        raw: (H, W, C) uint8 mask as read by OpenCV.

    Returns:
        np.ndarray: (H, W) int8 with 1 / 0 / -1.
    """
    channel = raw[:, :, 0]
    gt = np.full(channel.shape, GT_BACKGROUND, np.int8)
    gt[channel > RITM_IGNORE_VALUE] = GT_OBJECT
    gt[channel == RITM_IGNORE_VALUE] = GT_IGNORE
    return gt


@DATASETS.register_module()
class GrabCutDataset(FolderClickEvalDataset):
    """GrabCut: 50 images, one object each, a 128-valued ignore band.

    RITM layout folders, tried in order: ``data_GT``/``boundary_GT`` (the
    f-BRS/RITM zip), ``img``/``gt``, ``images``/``masks``; or the FocusCut
    layout (``gt/<name>#001.png``, 1 object / 255 void). See
    :class:`FolderClickEvalDataset` for the arguments.
    """

    RITM_DIRS = (('data_GT', 'boundary_GT'), ('img', 'gt'),
                 ('images', 'masks'))
    RITM_VALUES = RITM_MASK_VALUES
    RITM_RULE = RITM_MASK_RULE

    def decode_ritm_mask(self, raw: np.ndarray) -> np.ndarray:
        return decode_grabcut_mask(raw)


@DATASETS.register_module()
class BerkeleyDataset(FolderClickEvalDataset):
    """Berkeley: 100 objects on 96 BSDS photos, masks 0/255 (RITM's GrabCut
    rule applies).

    RITM layout folders, tried in order: ``images``/``masks`` (the f-BRS/RITM
    zip), ``img``/``gt``, ``data_GT``/``boundary_GT``; or the FocusCut
    layout.
    """

    RITM_DIRS = (('images', 'masks'), ('img', 'gt'),
                 ('data_GT', 'boundary_GT'))
    RITM_VALUES = RITM_MASK_VALUES
    RITM_RULE = RITM_MASK_RULE

    def decode_ritm_mask(self, raw: np.ndarray) -> np.ndarray:
        return decode_grabcut_mask(raw)
