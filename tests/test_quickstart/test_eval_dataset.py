"""The click-test adapter over a COCO-panoptic split."""
import json

import numpy as np
import pytest
from mmseg.registry import DATASETS

from interformer.quickstart import (
    SyntheticPanopticEvalDataset,
    generate_split,
    panoptic_paths,
    spread_indices,
)


@pytest.fixture(scope='module')
def val_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_val'))
    generate_split(root, 'val', 4, seed=0, size_range=(64, 80))
    return root


def test_samples_follow_contract(val_root):
    dataset = DATASETS.build(
        dict(type='SyntheticPanopticEvalDataset', data_root=val_root,
             min_area=50))
    with open(panoptic_paths(val_root, 'val')['ann_file']) as f:
        coco = json.load(f)
    things = {c['id'] for c in coco['categories'] if c['isthing']}
    expected = sum(s['area'] >= 50 and s['category_id'] in things
                   for a in coco['annotations'] for s in a['segments_info'])
    assert len(dataset) == expected > 0
    for i in range(len(dataset)):
        sample = dataset.get_sample(i)
        assert sample['image'].dtype == np.uint8
        assert sample['image'].ndim == 3 and sample['image'].shape[2] == 3
        assert sample['gt'].dtype == np.int8
        assert sample['gt'].shape == sample['image'].shape[:2]
        assert set(np.unique(sample['gt'])) <= {0, 1}
        assert (sample['gt'] == 1).sum() >= 50
        assert '#' in sample['name']
    assert len(set(dataset.names)) == len(dataset)


def test_max_instances_and_stuff(val_root):
    full = SyntheticPanopticEvalDataset(val_root, min_area=1)
    some = SyntheticPanopticEvalDataset(val_root, min_area=1,
                                        max_instances=3)
    assert len(some) == 3 and set(some.names) <= set(full.names)
    with_stuff = SyntheticPanopticEvalDataset(val_root, min_area=1,
                                              things_only=False)
    assert len(with_stuff) > len(full)


def test_spread_indices():
    assert spread_indices(10, None) == list(range(10))
    assert spread_indices(10, 3) == [0, 4, 9] or spread_indices(
        10, 3) == [0, 5, 9]
    assert spread_indices(3, 10) == [0, 1, 2]
    with pytest.raises(ValueError):
        spread_indices(10, 0)


def test_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match='panoptic_val2017.json'):
        SyntheticPanopticEvalDataset(str(tmp_path))
