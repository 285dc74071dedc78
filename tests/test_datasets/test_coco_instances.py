"""COCOInstanceDataset (own data) and the bounded retry of empty samples."""
import json

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from tiny_coco_formats import (
    encode_rle,
    polygon_of_box,
    rasterise,
    train_pipeline,
    write_coco_instances,
)

import interformer  # noqa: F401
from interformer.datasets import COCOInstanceDataset

H, W = 80, 100


def disk(cy, cx, r):
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy)**2 + (xx - cx)**2 <= r * r


POLYGON = [polygon_of_box(5, 5, 30, 40)]
COMPRESSED = encode_rle(disk(55, 30, 12), compressed=True)
UNCOMPRESSED = encode_rle(disk(50, 75, 15), compressed=False)
CROWD = [polygon_of_box(0, 60, 40, 100)]  # partly under the 3rd object
IMAGES = [
    dict(id=1, height=H, width=W, annotations=[
        dict(segmentation=POLYGON), dict(segmentation=COMPRESSED),
        dict(segmentation=UNCOMPRESSED),
        dict(segmentation=CROWD, iscrowd=1)]),
    dict(id=2, height=40, width=40, annotations=[]),
    dict(id=3, height=40, width=40, annotations=[
        dict(segmentation=[polygon_of_box(0, 0, 20, 20)], iscrowd=1)]),
]


@pytest.fixture(scope='module')
def coco_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('own') / 'my_dataset')
    write_coco_instances(root, IMAGES)
    return root


def build(root, **kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='COCOInstanceDataset', data_root=root,
               ann_file='ann.json', data_prefix=dict(img_path='images'))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def img_ids(dataset):
    return [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]


def test_filtering_of_images_without_objects(coco_dir):
    dataset = build(coco_dir, pipeline=[])
    assert isinstance(dataset, COCOInstanceDataset)
    assert img_ids(dataset) == [1]  # 2: no annotation, 3: crowd only
    assert img_ids(build(coco_dir, pipeline=[],
                         crowd_as_ignore=False)) == [1, 3]
    assert img_ids(build(coco_dir, pipeline=[], filter_empty=False)) == [
        1, 2, 3]


def test_polygons_and_both_rle_forms_rasterised(coco_dir):
    dataset = build(
        coco_dir,
        shuffle_instances=False,
        overlap_thr=None,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadSegmentIdMap')])
    results = dataset.prepare_data(0)
    id_map = results['gt_seg_map']
    assert id_map.shape == results['img'].shape[:2] == (H, W)
    for new_id, segm in enumerate([POLYGON, COMPRESSED, UNCOMPRESSED], 1):
        np.testing.assert_array_equal(id_map == new_id,
                                      rasterise(segm, H, W))
    # the crowd region is ignore (255) where no object lies
    crowd = rasterise(CROWD, H, W)
    np.testing.assert_array_equal(id_map == 255, crowd & (id_map != 3))
    under_object = crowd & disk(50, 75, 15)
    assert under_object.any() and (id_map[under_object] == 3).all()
    # as candidate objects when asked
    as_objects = build(coco_dir, shuffle_instances=False, overlap_thr=None,
                       crowd_as_ignore=False,
                       pipeline=dataset.pipeline.transforms)
    id_map = as_objects.prepare_data(0)['gt_seg_map']
    np.testing.assert_array_equal(id_map == 4, crowd)


def test_full_pipeline_with_ignore(coco_dir):
    record = []
    dataset = build(coco_dir, pipeline=train_pipeline(record))
    np.random.seed(11)
    seen_ignore = False
    for _ in range(5):
        out = dataset[0]
        assert tuple(out['inputs'].shape) == (3, 512, 512)
        gt = out['data_samples'].gt_sem_seg.data.numpy()
        assert gt.shape == (1, 512, 512)
        assert set(np.unique(gt).tolist()) <= {0, 1, 255}
        before, object_id, binary = record[-1]
        assert object_id in {1, 2, 3}
        np.testing.assert_array_equal(binary == 255, before == 255)
        seen_ignore |= bool((gt == 255).any())
    assert seen_ignore


def test_empty_sample_retried_with_another_index(coco_dir):
    dataset = build(coco_dir, filter_empty=False,
                    pipeline=train_pipeline())
    np.random.seed(0)
    for index in (1, 2):  # no object / crowd only
        out = dataset[index]
        assert out['data_samples'].metainfo['img_path'].endswith('img_1.jpg')
        assert out['data_samples'].gt_sem_seg.data.sum() > 0


def test_no_usable_object_anywhere_is_a_clear_error(coco_dir, tmp_path,
                                                    monkeypatch):
    content = json.load(open(f'{coco_dir}/ann.json'))
    content['images'] = [i for i in content['images'] if i['id'] != 1]
    content['annotations'] = [
        a for a in content['annotations'] if a['image_id'] != 1]
    empty_json = tmp_path / 'empty.json'
    empty_json.write_text(json.dumps(content))
    dataset = build(coco_dir, ann_file=str(empty_json), filter_empty=False,
                    max_refetch=5, pipeline=train_pipeline())
    calls = []
    prepare = COCOInstanceDataset.prepare_data
    monkeypatch.setattr(
        COCOInstanceDataset, 'prepare_data',
        lambda self, idx: calls.append(idx) or prepare(self, idx))
    with pytest.raises(RuntimeError, match='no sample with a usable object '
                       'after 5 retries'):
        dataset[0]
    assert len(calls) == 6  # first try + 5 retries, then stop
    with pytest.raises(ValueError, match='no image with an annotated'):
        build(coco_dir, ann_file=str(empty_json), pipeline=[])


def test_bad_annotation_file(coco_dir, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(
        images=[dict(id=1, file_name='x.jpg', width=4)],
        annotations=[dict(id=1, image_id=1, segmentation=[], area=0,
                          bbox=[0, 0, 1, 1], category_id=1)],
        categories=[])))
    with pytest.raises(ValueError, match='lacks a valid field'):
        build(coco_dir, ann_file=str(bad), pipeline=[])
    with pytest.raises(FileNotFoundError, match='ann_file'):
        build(coco_dir, ann_file='missing.json')
