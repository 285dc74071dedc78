"""Every leaf config loads, names registered components and keeps the
official training recipe."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS

import interformer  # noqa: F401  (registers the modules)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LEAF_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))


def _dataset_types(cfg):
    dataset = cfg.train_dataloader.dataset
    if dataset.type == 'ConcatDataset':
        return [d.type for d in dataset.datasets]
    return [dataset.type]


@pytest.mark.parametrize('path', LEAF_CONFIGS,
                         ids=[osp.basename(p) for p in LEAF_CONFIGS])
def test_leaf_config_names_registered_components(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg'
    assert 'interformer' in cfg.custom_imports.imports
    with MODELS.switch_scope_and_registry('mmseg') as models:
        for key in ('type', ):
            assert models.get(cfg.model[key]) is not None
        assert models.get(cfg.model.backbone.type) is not None
        assert models.get(cfg.model.neck.type) is not None
    for dataset_type in _dataset_types(cfg):
        assert DATASETS.get(dataset_type) is not None, dataset_type


@pytest.mark.parametrize('name, layers, decay', [
    ('interformer_light_coco_lvis_320k.py', 12, 0.65),
    ('interformer_tiny_coco_lvis_320k.py', 24, 0.75),
    ('interformer_light_custom_coco_instances.py', 12, 0.65),
])
def test_official_recipe(name, layers, decay):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    assert cfg.model.backbone.num_layers == layers
    assert cfg.optim_wrapper.constructor in (
        'LayerDecayOptimizerConstructor',
        'LearningRateDecayOptimizerConstructor')
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == layers
    assert cfg.optim_wrapper.paramwise_cfg.decay_rate == decay
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.train_cfg.max_iters == 320000
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.default_hooks.checkpoint.interval == 20000
    crop = cfg.train_dataloader.dataset.get('datasets', [
        cfg.train_dataloader.dataset
    ])[0].pipeline
    crops = [t for t in crop if t.type == 'RandomCrop']
    assert crops and tuple(crops[0].crop_size) == (512, 512)
    assert crops[0].cat_max_ratio == 0.75
