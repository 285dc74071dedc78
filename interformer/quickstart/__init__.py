"""The quickstart: a procedural COCO-panoptic dataset, a small InterFormer
trained on it in minutes, and the click test before and after training.

Not imported by :mod:`interformer` itself; configs that need the registered
dataset load it with ``custom_imports=dict(imports=['interformer',
'interformer.quickstart'])``.
"""
from .eval_dataset import SyntheticPanopticEvalDataset, spread_indices
from .hooks import TimeBudgetHook
from .synthetic import (
                        CATEGORIES,
                        generate_dataset,
                        generate_split,
                        is_complete,
                        panoptic_paths,
)

__all__ = [
    'CATEGORIES', 'SyntheticPanopticEvalDataset', 'TimeBudgetHook',
    'generate_dataset', 'generate_split', 'is_complete', 'panoptic_paths',
    'spread_indices'
]
