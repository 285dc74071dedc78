"""COCOPanopticDataset on a tiny dataset in the real COCO panoptic format."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from tiny_coco_formats import train_pipeline, write_coco_panoptic

import interformer  # noqa: F401
from interformer.datasets import COCOPanopticDataset

# (panoptic id, category id, box (y0, x0, y1, x1)); 184/187 are stuff
IMAGES = [
    dict(id=9, height=240, width=320, segments=[
        (5000, 184, (0, 0, 240, 320)),  # grass everywhere ...
        (300, 1, (20, 30, 120, 130)),  # ... a person on top
        (70000, 3, (100, 150, 200, 300)),  # ... and a car (B channel)
        (4242, 1, (230, 0, 240, 10)),  # a small person in a corner
    ]),
    dict(id=25, height=300, width=200, segments=[
        (12, 187, (0, 0, 100, 200)),  # sky; rows 100..149 stay VOID
        (13, 1, (150, 20, 290, 180)),
    ]),
    dict(id=30, height=100, width=100, segments=[
        (1, 1, (10, 10, 50, 50)),
    ]),
]


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'coco2017')
    write_coco_panoptic(root, IMAGES)
    return root


def build(root, **kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='COCOPanopticDataset', data_root=root)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def expected_id_map(spec):
    """Segment-id map the loader must produce (ids in annotation order)."""
    id_map = np.zeros((spec['height'], spec['width']), np.int32)
    for new_id, (_, _, (y0, x0, y1, x1)) in enumerate(spec['segments'], 1):
        id_map[y0:y1, x0:x1] = new_id
    return id_map


def test_data_list_keeps_things_and_stuff(coco_root):
    dataset = build(coco_root, pipeline=[])
    assert isinstance(dataset, COCOPanopticDataset) and len(dataset) == 3
    info = dataset.get_data_info(0)
    assert info['img_path'] == osp.join(coco_root, 'train2017',
                                        '000000000009.jpg')
    assert info['seg_map_path'] == osp.join(
        coco_root, 'annotations', 'panoptic_train2017', '000000000009.png')
    assert info['img_id'] == 9 and info['segment_source'] == 'panoptic'
    assert [s['id'] for s in info['segments']] == [5000, 300, 70000, 4242]
    assert [s['isthing'] for s in info['segments']] == [0, 1, 1, 1]
    assert dataset.metainfo['classes'] == ('background', 'object')


def test_segment_id_map_decodes_png(coco_root):
    dataset = build(
        coco_root,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadSegmentIdMap')])
    for index, spec in enumerate(IMAGES):
        results = dataset.prepare_data(index)
        id_map = results['gt_seg_map']
        assert id_map.dtype == np.int32
        assert id_map.shape == results['img'].shape[:2]
        np.testing.assert_array_equal(id_map, expected_id_map(spec))
        assert 'gt_seg_map' in results['seg_fields']
    # image 25: VOID rows are 0, i.e. background for the sampler
    assert (dataset.prepare_data(1)['gt_seg_map'][100:150] == 0).all()


def test_full_pipeline_shapes_values_and_sampled_segment(coco_root):
    record = []
    dataset = build(coco_root, pipeline=train_pipeline(record))
    np.random.seed(0)
    sampled_categories = set()
    for step in range(12):
        index = step % 2
        out = dataset[index]
        inputs, gt = out['inputs'], out['data_samples'].gt_sem_seg.data
        assert tuple(inputs.shape) == (3, 512, 512)
        assert str(inputs.dtype) == 'torch.uint8'
        assert tuple(gt.shape) == (1, 512, 512)
        values = set(np.unique(gt.numpy()).tolist())
        assert values <= {0, 1, 255} and 1 in values
        before, object_id, binary = record[-1]
        present = set(np.unique(before).tolist()) - {0, 255}
        assert object_id in present
        np.testing.assert_array_equal(binary, (before == object_id))
        np.testing.assert_array_equal(gt.numpy()[0], binary)
        segments = IMAGES[index]['segments']
        sampled_categories.add(segments[object_id - 1][1])
    # things (1, 3) and stuff (184, 187) are both sampled
    assert sampled_categories & {1, 3} and sampled_categories & {184, 187}


def test_ignore_list_ids_and_prefixes(coco_root, tmp_path):
    ignore = tmp_path / 'ignore_prefix.json'
    ignore.write_text(json.dumps([9, '000000000025']))
    dataset = build(coco_root, pipeline=[], ignore_file=str(ignore))
    assert [dataset.get_data_info(i)['img_id']
            for i in range(len(dataset))] == [30]
    ignore.write_text(json.dumps(['30']))  # a digit string is also an id
    dataset = build(coco_root, pipeline=[], ignore_file=str(ignore))
    assert [dataset.get_data_info(i)['img_id']
            for i in range(len(dataset))] == [9, 25]
    ignore.write_text(json.dumps(['0000000000']))  # prefix of every name
    with pytest.raises(ValueError, match='no image with an annotated'):
        build(coco_root, pipeline=[], ignore_file=str(ignore))
    ignore.write_text(json.dumps({'ids': [9]}))
    with pytest.raises(ValueError, match='JSON list'):
        build(coco_root, pipeline=[], ignore_file=str(ignore))
    with pytest.raises(FileNotFoundError, match='ignore_file'):
        build(coco_root, pipeline=[], ignore_file=str(tmp_path / 'no.json'))


def test_bad_files_raise_clear_errors(coco_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='ann_file'):
        build(coco_root, ann_file='annotations/missing.json')
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'images': []}))
    with pytest.raises(ValueError, match='not a COCO panoptic JSON'):
        build(coco_root, ann_file=str(bad))
