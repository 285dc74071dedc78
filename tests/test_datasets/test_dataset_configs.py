"""The dataset base configs build and feed batches from the documented tree."""
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from tiny_coco_formats import (
    polygon_of_box,
    write_coco_instances,
    write_coco_panoptic,
    write_lvis,
)

import interformer  # noqa: F401

PIPELINE = [
    'LoadImageFromFile', 'LoadSegmentIdMap', 'RandomRescale', 'RandomFlip',
    'PadToMinSize', 'RandomCrop', 'PhotoMetricDistortion', 'ObjectSampler',
    'PackSegInputs'
]


def load_cfg(repo_root, name):
    return Config.fromfile(
        osp.join(repo_root, 'configs', '_base_', 'datasets', name))


def one_batch(loader_cfg):
    loader_cfg = loader_cfg.copy()
    loader_cfg.update(num_workers=0, persistent_workers=False)
    init_default_scope('mmseg')
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    return loader, next(iter(loader))


def check_batch(batch, size):
    assert len(batch['inputs']) == len(batch['data_samples']) == size
    for inputs, sample in zip(batch['inputs'], batch['data_samples']):
        assert tuple(inputs.shape) == (3, 512, 512)
        gt = sample.gt_sem_seg.data.numpy()
        assert gt.shape == (1, 512, 512)
        assert set(np.unique(gt).tolist()) <= {0, 1, 255}
        assert (gt == 1).any()


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('cfg') / 'data')
    # the same COCO train2017 image annotated twice, as in reality
    write_coco_panoptic(osp.join(data, 'coco2017'), [
        dict(id=9, height=240, width=320, segments=[
            (5000, 184, (0, 0, 240, 320)), (300, 1, (20, 30, 120, 130))]),
        dict(id=25, height=300, width=200, segments=[
            (12, 187, (0, 0, 100, 200))]),
    ])
    write_lvis(data, [
        dict(id=9, height=240, width=320,
             polygons=[[polygon_of_box(10, 10, 90, 90)],
                       [polygon_of_box(100, 150, 200, 300)]]),
    ])
    write_coco_instances(osp.join(data, 'my_dataset'), [
        dict(id=1, height=90, width=120, annotations=[
            dict(segmentation=[polygon_of_box(5, 5, 60, 60)])]),
    ])
    return data


def test_coco_lvis_config(repo_root, data_dir):
    cfg = load_cfg(repo_root, 'coco_lvis_512x512.py')
    loader_cfg = cfg.train_dataloader
    assert loader_cfg.batch_size == 4
    assert loader_cfg.sampler.type == 'InfiniteSampler'
    assert cfg.val_dataloader is None and cfg.ignore_file is None
    coco, lvis = loader_cfg.dataset.datasets
    assert (coco.type, lvis.type) == ('COCOPanopticDataset', 'LVISDataset')
    assert [t['type'] for t in coco.pipeline] == PIPELINE
    assert lvis.overlap_thr == 0.5 and lvis.shuffle_instances
    # relocate the documented tree (data/...) into the temporary folder
    coco.data_root = osp.join(data_dir, 'coco2017')
    lvis.data_root = data_dir
    loader, batch = one_batch(loader_cfg)
    assert len(loader.dataset) == 3  # 2 panoptic + 1 LVIS image
    assert [type(d).__name__ for d in loader.dataset.datasets] == [
        'COCOPanopticDataset', 'LVISDataset']
    check_batch(batch, 4)
    lvis_sample = loader.dataset[2]
    assert lvis_sample['data_samples'].metainfo['img_path'] == osp.join(
        data_dir, 'coco2017', 'train2017', '000000000009.jpg')


def test_coco_instances_example_config(repo_root, data_dir):
    cfg = load_cfg(repo_root, 'coco_instances_example.py')
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'COCOInstanceDataset'
    assert [t['type'] for t in dataset.pipeline] == PIPELINE
    dataset.data_root = osp.join(data_dir, 'my_dataset')
    dataset.ann_file = 'ann.json'
    _, batch = one_batch(cfg.train_dataloader)
    check_batch(batch, 4)


def test_ignore_file_override_as_documented(repo_root, tmp_path):
    base = osp.join(repo_root, 'configs', '_base_', 'datasets',
                    'coco_lvis_512x512.py')
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(
        f'_base_ = [{base!r}]\n'
        "ignore_file = 'data/interformer/ignore_prefix.json'\n"
        'train_dataloader = dict(dataset=dict(datasets=[\n'
        '    dict(_base_.coco_panoptic_train, ignore_file=ignore_file),\n'
        '    dict(_base_.lvis_train, ignore_file=ignore_file)]))\n')
    cfg = Config.fromfile(str(leaf))
    datasets = cfg.train_dataloader.dataset.datasets
    assert [d.ignore_file for d in datasets] == [
        'data/interformer/ignore_prefix.json'] * 2
    assert [d.type for d in datasets] == ['COCOPanopticDataset', 'LVISDataset']
    assert cfg.train_dataloader.batch_size == 4
