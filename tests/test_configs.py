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


# --cfg-options: every override takes effect or is refused by name
QUICKSTART = osp.join(REPO, 'configs', 'interformer_quickstart.py')


def test_top_level_overrides_reach_the_entries_that_use_them(tmp_path):
    from interformer.utils.config import load_config
    root = str(tmp_path / 'corrupt_copy')
    cfg = load_config(QUICKSTART, {'data_root': root, 'time_budget': 7})
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.quickstart_eval.data_root == root
    budget = [h for h in cfg.custom_hooks if h.type == 'TimeBudgetHook']
    assert budget[0].budget_s == 7
    # nothing is left unresolved anywhere in the built config
    assert '${' not in cfg.pretty_text


def test_checkpoint_interval_override_on_quickstart_config():
    from interformer.utils.config import load_config
    cfg = load_config(QUICKSTART,
                      {'default_hooks.checkpoint.interval': 2})
    assert cfg.default_hooks.checkpoint.interval == 2
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


@pytest.mark.parametrize('key, value, expected', [
    ('foo_bar', 1, r"unknown top-level key 'foo_bar'"),
    ('data_roots', 'x', r"'data_roots'.*close matches: data_root"),
    ('model.neck.nonexistent', 1, r"model.neck \(type IMSA\) takes no "
     r"argument 'nonexistent'"),
    ('train_cfg.max_iter', 2, r"train_cfg \(type IterBasedTrainLoop\).*"
     r"'max_iter'.*close matches: max_iters"),
    ('model.train_cfg.max_num_click', 3, r"close matches: max_num_clicks"),
    ('optim_wrapper.optimizer.lrr', 1, r"close matches: lr"),
    ('custom_hooks.3.budget_s', 1, r"list of 2; '3' is not an index"),
    ('crop_size', (64, 64), r"only uses 'crop_size' while the file is "
     r"read.*model.backbone.img_size"),
    ('val_cfg.type', 'ValLoop', r'val_cfg is None .*set it whole'),
])
def test_overrides_that_nothing_reads_are_refused(key, value, expected):
    from interformer.utils.cli import UserError
    from interformer.utils.config import load_config
    with pytest.raises(UserError, match=expected) as info:
        load_config(QUICKSTART, {key: value})
    assert 'interformer_quickstart.py' in str(info.value)


@pytest.mark.parametrize('key, value', [
    ('model.backbone.init_cfg', None),  # a listed key
    ('env_cfg.dist_cfg.timeout', 60),  # new entry of a plain dict
    ('model.backbone.attn_drop_rate', 0.1),  # a constructor argument
    ('default_hooks.logger.interval', 5),
])
def test_valid_overrides_are_accepted(key, value):
    from interformer.utils.config import load_config
    cfg = load_config(QUICKSTART, {key: value})
    node = cfg
    for part in key.split('.'):
        node = node[part]
    assert node == value


def test_unreadable_config_names_the_file(tmp_path):
    from interformer.utils.cli import UserError
    from interformer.utils.config import load_config
    bad = tmp_path / 'broken.py'
    bad.write_text('model = dict(type=\n')
    with pytest.raises(UserError, match='broken.py'):
        load_config(str(bad))
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_config(str(tmp_path / 'nope.py'))
