"""The procedural COCO-panoptic generator: format, determinism, reuse."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from interformer.quickstart.synthetic import (
    CATEGORIES,
    generate_dataset,
    generate_split,
    id_to_rgb,
    is_complete,
    panoptic_paths,
    rgb_to_id,
)

SIZE = (64, 96)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_dataset(root, num_train=6, num_val=3, seed=3, size_range=SIZE)
    return root


def _load(root, split):
    with open(panoptic_paths(root, split)['ann_file']) as f:
        return json.load(f)


def test_id_rgb_roundtrip():
    ids = np.array([[0, 1, 255], [256, 65536, (1 << 24) - 1]])
    rgb = id_to_rgb(ids)
    assert rgb.dtype == np.uint8
    assert rgb[1, 0].tolist() == [0, 1, 0]
    assert rgb[1, 1].tolist() == [0, 0, 1]
    np.testing.assert_array_equal(rgb_to_id(rgb), ids)


@pytest.mark.parametrize('split,count', [('train', 6), ('val', 3)])
def test_coco_panoptic_format(data_root, split, count):
    coco = _load(data_root, split)
    paths = panoptic_paths(data_root, split)
    assert {'info', 'licenses', 'images', 'annotations',
            'categories'} <= set(coco)
    cats = {c['id']: c for c in coco['categories']}
    assert {c['id'] for c in CATEGORIES} == set(cats)
    assert {c['isthing'] for c in cats.values()} == {0, 1}
    for cat in cats.values():
        assert {'id', 'name', 'supercategory', 'isthing', 'color'} <= set(cat)
    assert len(coco['images']) == len(coco['annotations']) == count
    assert len({img['id'] for img in coco['images']}) == count
    for img, ann in zip(coco['images'], coco['annotations']):
        assert ann['image_id'] == img['id']
        image = cv2.imread(osp.join(paths['img_dir'], img['file_name']))
        assert image.shape == (img['height'], img['width'], 3)
        assert SIZE[0] <= img['height'] <= SIZE[1]
        png = cv2.imread(osp.join(paths['seg_dir'], ann['file_name']))
        ids = rgb_to_id(png[..., ::-1])
        assert ids.shape == image.shape[:2]
        segs = ann['segments_info']
        seg_ids = [s['id'] for s in segs]
        assert len(set(seg_ids)) == len(seg_ids) and 0 not in seg_ids
        # every pixel belongs to exactly one listed segment
        assert set(np.unique(ids).tolist()) == set(seg_ids)
        assert sum(s['area'] for s in segs) == ids.size
        for seg in segs:
            mask = ids == seg['id']
            ys, xs = np.nonzero(mask)
            assert seg['area'] == mask.sum()
            assert seg['bbox'] == [xs.min(), ys.min(),
                                   xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert seg['iscrowd'] == 0
            assert seg['isthing'] == cats[seg['category_id']]['isthing']
        assert any(s['isthing'] for s in segs)


def test_variety(tmp_path):
    root = str(tmp_path)
    generate_split(root, 'train', 30, seed=0, size_range=SIZE)
    coco = _load(root, 'train')
    thing_cats = {s['category_id'] for a in coco['annotations']
                  for s in a['segments_info'] if s['isthing']}
    assert len(thing_cats) == sum(c['isthing'] for c in CATEGORIES)
    areas = [s['area'] for a in coco['annotations']
             for s in a['segments_info'] if s['isthing']]
    assert max(areas) > 10 * min(areas)  # small and large objects


def test_deterministic(data_root, tmp_path):
    other = str(tmp_path)
    generate_split(other, 'val', 3, seed=3, size_range=SIZE)
    assert _load(other, 'val') == _load(data_root, 'val')
    a, b = panoptic_paths(data_root, 'val'), panoptic_paths(other, 'val')
    for name in sorted(os.listdir(a['seg_dir'])):
        with open(osp.join(a['seg_dir'], name), 'rb') as fa, open(
                osp.join(b['seg_dir'], name), 'rb') as fb:
            assert fa.read() == fb.read()
    generate_split(other, 'val', 3, seed=4, size_range=SIZE, force=True)
    assert _load(other, 'val') != _load(data_root, 'val')


def test_reuse_and_repair(tmp_path):
    root = str(tmp_path)
    paths = generate_split(root, 'val', 2, seed=0, size_range=SIZE)
    stamp = os.stat(paths['ann_file']).st_mtime_ns
    generate_split(root, 'val', 2, seed=0, size_range=SIZE)
    assert os.stat(paths['ann_file']).st_mtime_ns == stamp  # reused
    assert is_complete(root, 'val', 2, 0, SIZE)
    assert not is_complete(root, 'val', 3, 0, SIZE)
    assert not is_complete(root, 'val', 2, 1, SIZE)
    victim = osp.join(paths['img_dir'], sorted(os.listdir(
        paths['img_dir']))[0])
    os.remove(victim)
    assert not is_complete(root, 'val', 2, 0, SIZE)
    generate_split(root, 'val', 2, seed=0, size_range=SIZE)
    assert osp.isfile(victim) and is_complete(root, 'val', 2, 0, SIZE)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_images'):
        generate_split(str(tmp_path), 'val', 0)
    with pytest.raises(ValueError, match='size_range'):
        generate_split(str(tmp_path), 'val', 1, size_range=(100, 50))
