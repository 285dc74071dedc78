"""LVISDataset on a tiny dataset in the real LVIS v1 format."""
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from tiny_coco_formats import polygon_of_box, train_pipeline, write_lvis

import interformer  # noqa: F401
from interformer.datasets import LVISDataset

H, W = 120, 160
BOXES = dict(
    a=(0, 0, 40, 40),
    b=(0, 10, 40, 50),  # 75 % of b lies on a: only one of them survives
    c=(60, 60, 100, 100),
    d=(60, 90, 100, 130),  # 25 % overlap with c: both kept, later on top
)
DEGENERATE = [[10, 5, 20, 5, 30, 5]]  # collinear: area 0, skipped
TWO_PARTS = [polygon_of_box(100, 0, 110, 10), polygon_of_box(100, 20, 110, 30)]
IMAGES = [
    dict(id=1, height=H, width=W, polygons=[
        [polygon_of_box(*BOXES['a'])], [polygon_of_box(*BOXES['b'])],
        [polygon_of_box(*BOXES['c'])], DEGENERATE,
        [polygon_of_box(*BOXES['d'])], TWO_PARTS]),
    dict(id=2, height=64, width=48, split='val2017',
         polygons=[[polygon_of_box(5, 5, 30, 30)]]),
    dict(id=3, height=64, width=48, polygons=[]),  # no annotation at all
]


def box(name_or_box):
    y0, x0, y1, x1 = BOXES.get(name_or_box, name_or_box)
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('lvis') / 'data')
    write_lvis(data, IMAGES)
    return data


def build(data_dir, **kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='LVISDataset', data_root=data_dir)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def load_id_map(dataset, index=0):
    return dataset.prepare_data(index)['gt_seg_map']


def test_data_list_follows_coco_url(data_dir):
    dataset = build(data_dir, pipeline=[])
    assert isinstance(dataset, LVISDataset)
    assert len(dataset) == 2  # image 3 has no annotation
    first, second = dataset.get_data_info(0), dataset.get_data_info(1)
    assert first['img_path'] == osp.join(data_dir, 'coco2017', 'train2017',
                                         '000000000001.jpg')
    assert second['img_path'] == osp.join(data_dir, 'coco2017', 'val2017',
                                          '000000000002.jpg')
    assert (first['height'], first['width']) == (H, W)
    assert len(first['instances']) == 6
    assert first['overlap_thr'] == 0.5 and first['shuffle_instances']
    assert len(build(data_dir, pipeline=[], filter_empty=False)) == 3


def test_overlap_rule_and_later_masks_on_top(data_dir):
    dataset = build(
        data_dir,
        shuffle_instances=False,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadSegmentIdMap')])
    id_map = load_id_map(dataset)
    assert id_map.dtype == np.int32 and id_map.shape == (H, W)
    # a=1 (b skipped, degenerate skipped), c=2, d=3, two-part polygon=4
    assert set(np.unique(id_map)) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(id_map == 1, box('a'))
    np.testing.assert_array_equal(id_map == 2, box('c') & ~box('d'))
    np.testing.assert_array_equal(id_map == 3, box('d'))
    np.testing.assert_array_equal(
        id_map == 4, box((100, 0, 110, 10)) | box((100, 20, 110, 30)))
    # without the rule b is painted on top of a
    no_rule = build(data_dir, shuffle_instances=False, overlap_thr=None,
                    pipeline=dataset.pipeline.transforms)
    id_map = load_id_map(no_rule)
    assert len(set(np.unique(id_map)) - {0}) == 5
    np.testing.assert_array_equal(id_map == 2, box('b'))


def test_annotations_are_shuffled_per_sample(data_dir):
    dataset = build(
        data_dir,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadSegmentIdMap')])
    np.random.seed(3)
    survivors, on_top = set(), set()
    for _ in range(24):
        id_map = load_id_map(dataset)
        assert len(set(np.unique(id_map)) - {0}) == 4
        a_kept = (id_map[0:40, 0:10] > 0).all()
        b_kept = (id_map[0:40, 40:50] > 0).all()
        assert a_kept != b_kept  # exactly one of the overlapping pair
        survivors.add('a' if a_kept else 'b')
        overlap = id_map[60:100, 90:100]
        assert len(np.unique(overlap)) == 1
        c_id = id_map[80, 70]
        on_top.add('c' if overlap[0, 0] == c_id else 'd')
    assert survivors == {'a', 'b'} and on_top == {'c', 'd'}


def test_full_pipeline_shapes_and_values(data_dir):
    record = []
    dataset = build(data_dir, pipeline=train_pipeline(record))
    np.random.seed(5)
    for index in (0, 1, 0, 1):
        out = dataset[index]
        assert tuple(out['inputs'].shape) == (3, 512, 512)
        gt = out['data_samples'].gt_sem_seg.data
        assert tuple(gt.shape) == (1, 512, 512)
        assert set(np.unique(gt.numpy()).tolist()) <= {0, 1, 255}
        before, object_id, binary = record[-1]
        assert object_id in set(np.unique(before).tolist()) - {0, 255}
        np.testing.assert_array_equal(gt.numpy()[0], binary)
        assert binary.sum() > 0


def test_not_an_lvis_json(data_dir, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('[1, 2]')
    with pytest.raises(ValueError, match='not an LVIS JSON'):
        build(data_dir, ann_file=str(bad))
    with pytest.raises(FileNotFoundError, match='lvis_v1_val.json'):
        build(data_dir, ann_file='lvis/lvis_v1_val.json')
