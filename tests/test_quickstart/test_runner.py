"""A very short end-to-end quickstart run: the files and summary it leaves."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from interformer.apis import InterFormerPredictor
from interformer.quickstart.runner import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    PLOT_NAME,
    SUMMARY_NAME,
    TABLE_NAME,
    next_commands,
    run_quickstart,
)


@pytest.fixture(scope='module')
def quickstart_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('quickstart'))
    summary = run_quickstart(
        out_dir=out, time_budget=4, seed=0, num_eval_instances=2,
        device='cpu', num_train=8, num_val=2, max_clicks=3)
    return out, summary


def test_summary(quickstart_run):
    out, summary = quickstart_run
    with open(osp.join(out, SUMMARY_NAME)) as f:
        saved = json.load(f)
    assert saved == summary
    for key in ('untrained', 'trained'):
        assert set(saved[key]) == {'NoC@85', 'NoC@90'}
        for value in saved[key].values():
            assert 1 <= value <= 3  # max_clicks
    assert saved['train_seconds'] >= 4
    assert saved['train_iters'] >= 1
    assert saved['num_eval_instances'] == 2


def test_files(quickstart_run):
    out, _ = quickstart_run
    for name in (CONFIG_NAME, CHECKPOINT_NAME, PLOT_NAME, TABLE_NAME,
                 'clicktest_untrained.json', 'clicktest_trained.json'):
        assert osp.isfile(osp.join(out, name)), name
    with open(osp.join(out, TABLE_NAME)) as f:
        table = f.read()
    assert 'untrained' in table and 'NoC@85' in table
    assert osp.isfile(osp.join(out, 'data', 'annotations',
                               'panoptic_val2017.json'))


def test_saved_model_loads(quickstart_run):
    """The dumped config + latest.pth are what demo/clicktest load."""
    out, _ = quickstart_run
    cfg = Config.fromfile(osp.join(out, CONFIG_NAME))
    assert cfg.train_dataloader.dataset.data_root == osp.join(out, 'data')
    predictor = InterFormerPredictor(cfg, osp.join(out, CHECKPOINT_NAME))
    image = np.zeros((40, 50, 3), np.uint8)
    predictor.set_image(image)
    predictor.add_click(20, 25, True)
    assert predictor.predict().mask.shape == (40, 50)


def test_next_commands():
    lines = next_commands('work_dirs/quickstart')
    assert lines[-1].split()[1:] == ['tools/demo.py']
    for name in ('grabcut', 'berkeley', 'davis', 'sbd'):
        assert any(f'--dataset {name}' in line for line in lines)
    assert 'latest.pth' in next_commands('/tmp/x')[-1]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='time_budget'):
        run_quickstart(out_dir=str(tmp_path), time_budget=0)
    with pytest.raises(FileNotFoundError, match='config'):
        run_quickstart(out_dir=str(tmp_path), time_budget=1,
                       config=str(tmp_path / 'missing.py'), num_train=2,
                       num_val=1)
