"""Click-test datasets: GrabCut, Berkeley, DAVIS and SBD (one object per
sample, ``get_sample(i) -> dict(image, gt, name)``)."""
from .base import (
                   GT_BACKGROUND,
                   GT_IGNORE,
                   GT_OBJECT,
                   LAYOUTS,
                   ClickEvalDataset,
                   FolderClickEvalDataset,
)
from .davis import DAVISDataset
from .grabcut_berkeley import BerkeleyDataset, GrabCutDataset
from .sbd import SBDEvalDataset

__all__ = [
    'ClickEvalDataset', 'FolderClickEvalDataset', 'GrabCutDataset',
    'BerkeleyDataset', 'DAVISDataset', 'SBDEvalDataset', 'GT_OBJECT',
    'GT_BACKGROUND', 'GT_IGNORE', 'LAYOUTS', 'CLICK_EVAL_DATASETS'
]

#: ``--dataset`` names of the click test -> dataset class.
CLICK_EVAL_DATASETS = dict(
    grabcut=GrabCutDataset,
    berkeley=BerkeleyDataset,
    davis=DAVISDataset,
    sbd=SBDEvalDataset)
