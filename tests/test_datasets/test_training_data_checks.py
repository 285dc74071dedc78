"""Training datasets: missing files found when the set is built (all at
once), truncated annotation JSONs and damaged images named."""
import os
import os.path as osp

import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from tiny_coco_formats import (
    polygon_of_box,
    train_pipeline,
    write_coco_instances,
    write_coco_panoptic,
    write_lvis,
)

import interformer  # noqa: F401
from interformer.datasets import file_checks
from interformer.datasets.image_check import DamagedImageError

PANOPTIC = [
    dict(id=i, height=64, width=80,
         segments=[(1, 1, (8, 8, 40, 50)), (2, 3, (30, 20, 60, 70))])
    for i in (1, 2, 3, 4)
]


def _panoptic(root, **kwargs):
    init_default_scope('mmseg')
    return DATASETS.build(
        dict(type='COCOPanopticDataset', data_root=root, **kwargs))


@pytest.fixture
def panoptic_root(tmp_path):
    root = str(tmp_path / 'coco2017')
    write_coco_panoptic(root, PANOPTIC)
    return root


def _files(root, folder):
    folder = osp.join(root, folder)
    return sorted(osp.join(folder, f) for f in os.listdir(folder))


def test_every_missing_file_is_reported_when_built(panoptic_root):
    images = _files(panoptic_root, 'train2017')
    pngs = _files(panoptic_root, osp.join('annotations',
                                          'panoptic_train2017'))
    gone = [images[0], images[2], pngs[3]]
    for path in gone:
        os.remove(path)
    with pytest.raises(file_checks.MissingFilesError) as info:
        _panoptic(panoptic_root, pipeline=[])
    message = str(info.value)
    assert '3 of the 8 files' in message and 'panoptic_train2017.json' in \
        message
    for path in gone:
        assert path in message
    # opting out keeps the old lazy behaviour
    assert len(_panoptic(panoptic_root, pipeline=[], check_files=False)) == 4


def test_large_sets_show_a_progress_bar(panoptic_root, monkeypatch, capsys):
    monkeypatch.setattr(file_checks, 'PROGRESS_MIN_FILES', 2)
    _panoptic(panoptic_root, pipeline=[])
    assert 'checking files' in capsys.readouterr().err


def _instances(tmp_path):
    root = str(tmp_path / 'own')
    images = [dict(id=1, height=40, width=50, annotations=[
        dict(segmentation=[polygon_of_box(5, 5, 30, 30)])])]
    write_coco_instances(root, images)
    return osp.join(root, 'ann.json'), dict(
        type='COCOInstanceDataset', data_root=root, ann_file='ann.json',
        data_prefix=dict(img_path='images'))


def _lvis(tmp_path):
    data = str(tmp_path / 'data')
    path = write_lvis(data, [dict(id=1, height=40, width=50,
                                  polygons=[[polygon_of_box(5, 5, 30, 30)]])])
    return path, dict(type='LVISDataset', data_root=data)


def _panoptic_cfg(tmp_path):
    root = str(tmp_path / 'coco2017')
    return write_coco_panoptic(root, PANOPTIC[:1]), dict(
        type='COCOPanopticDataset', data_root=root)


@pytest.mark.parametrize('make', [_panoptic_cfg, _instances, _lvis])
def test_truncated_annotation_json_names_the_file(tmp_path, make):
    path, cfg = make(tmp_path)
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 2)
    init_default_scope('mmseg')
    with pytest.raises(ValueError) as info:
        DATASETS.build(dict(cfg, pipeline=[]))
    message = str(info.value)
    assert path in message and 'not valid JSON' in message
    assert 'looks truncated' in message


def _truncate(path):
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size // 3)


def test_damaged_training_image_stops_by_default(panoptic_root):
    images = _files(panoptic_root, 'train2017')
    _truncate(images[1])
    dataset = _panoptic(panoptic_root, pipeline=train_pipeline())
    with pytest.raises(DamagedImageError) as info:
        for i in range(len(dataset)):
            dataset[i]
    assert images[1] in str(info.value)
    assert "damaged_images='skip'" in str(info.value)


def test_damaged_training_image_skip_and_count(panoptic_root):
    from interformer.engine import DamagedImageSummaryHook
    images = _files(panoptic_root, 'train2017')
    _truncate(images[1])
    _truncate(images[3])
    dataset = _panoptic(panoptic_root, pipeline=train_pipeline(),
                        damaged_images='skip')
    for i in range(len(dataset)):
        sample = dataset[i]  # a damaged sample is replaced by another
        assert sample['inputs'].shape[0] == 3
    count, messages = dataset.damaged_summary()
    assert count >= 2 and len(messages) == 2
    assert any(images[1] in m for m in messages)
    assert any(images[3] in m for m in messages)

    class Loader:
        pass

    class Runner:
        train_dataloader = Loader()

    Runner.train_dataloader.dataset = dataset
    lines = DamagedImageSummaryHook().summary_lines(Runner())
    assert 'from 2 file(s)' in lines[0]


def test_damaged_images_mode_is_checked(panoptic_root):
    with pytest.raises(ValueError, match="damaged_images must be one of"):
        _panoptic(panoptic_root, pipeline=[], damaged_images='ignore')
