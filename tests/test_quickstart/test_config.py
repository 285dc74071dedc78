"""The quickstart config reads the generated data with the real training
dataset and transforms."""
import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

import interformer.quickstart  # noqa: F401  (registers the eval dataset)
from interformer.quickstart.synthetic import generate_dataset


def test_training_dataset_reads_generated_data(repo_root, tmp_path):
    root = str(tmp_path)
    generate_dataset(root, num_train=4, num_val=4, seed=0)
    cfg = Config.fromfile(f'{repo_root}/configs/interformer_quickstart.py')
    init_default_scope('mmseg')
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = root
    dataset = DATASETS.build(dataset_cfg)
    assert type(dataset).__name__ == 'COCOPanopticDataset'
    assert len(dataset) == 4
    crop = tuple(cfg.crop_size)
    for i in range(len(dataset)):
        sample = dataset[i]
        assert tuple(sample['inputs'].shape) == (3, ) + crop
        gt = sample['data_samples'].gt_sem_seg.data.numpy()
        assert gt.shape == (1, ) + crop
        assert set(np.unique(gt)) <= {0, 1, 255} and (gt == 1).any()
    eval_set = DATASETS.build(dict(cfg.quickstart_eval, data_root=root))
    assert len(eval_set) >= 1
