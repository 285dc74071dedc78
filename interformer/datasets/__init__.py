"""Registered datasets and transforms (training and click-test sets)."""
from . import (
    click_eval,  # noqa: F401
    transforms,  # noqa: F401
)
from .coco_instances import COCOInstanceDataset
from .coco_panoptic import COCOPanopticDataset
from .lvis import LVISDataset
from .object_dataset import BaseInstanceDataset, BaseObjectDataset

__all__ = [
    'transforms', 'BaseObjectDataset', 'BaseInstanceDataset',
    'COCOPanopticDataset', 'LVISDataset', 'COCOInstanceDataset'
]
