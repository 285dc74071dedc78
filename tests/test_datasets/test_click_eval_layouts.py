"""Click-test dataset loaders on small synthetic folders, every layout."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import scipy.io
from mmseg.registry import DATASETS
from PIL import Image

from interformer.datasets.click_eval import (
    BerkeleyDataset,
    DAVISDataset,
    GrabCutDataset,
    SBDEvalDataset,
)

H, W = 12, 16


def _image(seed=0, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


def _write_rgb(path, rgb):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, rgb[:, :, ::-1])


def _write_gray(path, mask):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, mask)


def _write_indexed(path, indices):
    """An indexed PNG whose palette colours differ from the indices."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = Image.fromarray(indices.astype(np.uint8), mode='P')
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (200, 10, 30)
    palette[255] = (7, 7, 7)
    img.putpalette(palette.ravel().tolist())
    img.save(path)


def _ritm_mask():
    """0 background, 255 object (rows 3..8, cols 4..11), 128 band."""
    mask = np.zeros((H, W), np.uint8)
    mask[2:10, 3:13] = 128
    mask[3:9, 4:12] = 255
    return mask


def _expected_gt():
    gt = np.zeros((H, W), np.int8)
    gt[2:10, 3:13] = -1
    gt[3:9, 4:12] = 1
    return gt


@pytest.mark.parametrize('cls,img_dir,gt_dir,ext', [
    (GrabCutDataset, 'data_GT', 'boundary_GT', '.bmp'),
    (GrabCutDataset, 'img', 'gt', '.png'),
    (BerkeleyDataset, 'images', 'masks', '.png'),
    (BerkeleyDataset, 'img', 'gt', '.png'),
])
def test_ritm_layouts(tmp_path, cls, img_dir, gt_dir, ext):
    root = str(tmp_path)
    for i, stem in enumerate(['b_img', 'a_img']):
        _write_rgb(osp.join(root, img_dir, stem + '.png'), _image(i))
        _write_gray(osp.join(root, gt_dir, stem + ext), _ritm_mask())
    dataset = cls(root)
    assert dataset.layout == 'ritm'
    assert len(dataset) == 2 and dataset.names == ['a_img', 'b_img']
    sample = dataset.get_sample(0)
    assert sample['name'] == 'a_img'
    np.testing.assert_array_equal(sample['image'], _image(1))  # RGB order
    assert sample['gt'].dtype == np.int8
    np.testing.assert_array_equal(sample['gt'], _expected_gt())
    built = DATASETS.build(dict(type=cls.__name__, data_root=root))
    assert built.names == dataset.names


def test_ritm_colour_mask_reads_channel_zero(tmp_path):
    """RITM reads OpenCV channel 0 (blue) of colour masks."""
    root = str(tmp_path)
    _write_rgb(osp.join(root, 'images', 'x.jpg'), _image())
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[1:5, 1:5, 0] = 255  # blue: object
    bgr[6:9, 6:9, 2] = 255  # red only: not object for RITM
    bgr[10, 10, 0] = 128  # ignore
    _write_gray(osp.join(root, 'masks', 'x.png'), bgr)
    gt = BerkeleyDataset(root).get_sample(0)['gt']
    assert (gt == 1).sum() == 16 and gt[2, 2] == 1
    assert gt[7, 7] == 0 and gt[10, 10] == -1


def test_davis_ritm_any_nonzero_is_object(tmp_path):
    root = str(tmp_path)
    _write_rgb(osp.join(root, 'img', 'bear.jpg'), _image())
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[2:4, 2:4] = (0, 0, 38)  # a DAVIS palette colour: object
    bgr[8, 8] = (128, 128, 128)  # no ignore band in DAVIS
    _write_gray(osp.join(root, 'gt', 'bear.png'), bgr)
    dataset = DAVISDataset(root)
    gt = dataset.get_sample(0)['gt']
    assert dataset.layout == 'ritm'
    assert (gt == 1).sum() == 5 and gt.min() == 0


@pytest.mark.parametrize('cls', [GrabCutDataset, BerkeleyDataset,
                                 DAVISDataset])
def test_focuscut_layout(tmp_path, cls):
    root = str(tmp_path)
    _write_rgb(osp.join(root, 'img', 'cat.jpg'), _image(0))
    _write_rgb(osp.join(root, 'img', 'dog.png'), _image(1))
    first = np.zeros((H, W), np.uint8)
    first[2:6, 2:6] = 1
    first[1, :] = 255
    second = np.zeros((H, W), np.uint8)
    second[7:10, 7:12] = 1
    _write_indexed(osp.join(root, 'gt', 'cat#001.png'), first)
    _write_indexed(osp.join(root, 'gt', 'cat#002.png'), second)
    _write_indexed(osp.join(root, 'gt', 'dog#001.png'), second)
    os.makedirs(osp.join(root, 'list'))
    dataset = cls(root)
    assert dataset.layout == 'focuscut'
    assert dataset.names == ['cat#001', 'cat#002', 'dog#001']
    sample = dataset.get_sample(0)
    assert (sample['gt'] == 1).sum() == 16
    assert (sample['gt'] == -1).sum() == W and sample['gt'][1, 3] == -1
    assert (dataset.get_sample(1)['gt'] == 1).sum() == 15
    np.testing.assert_array_equal(dataset.get_sample(2)['image'], _image(1))
    # the explicit override reads the same folders as a RITM layout: no
    # '#' stems match the images, so it fails naming the image
    with pytest.raises(FileNotFoundError, match='no mask for image'):
        cls(root, layout='ritm', img_dir='img', gt_dir='gt')


def test_explicit_folders_and_layout(tmp_path):
    root = str(tmp_path)
    _write_rgb(osp.join(root, 'photos', 'a.png'), _image())
    _write_gray(osp.join(root, 'labels', 'a.png'), _ritm_mask())
    dataset = GrabCutDataset(root, layout='ritm', img_dir='photos',
                             gt_dir='labels')
    np.testing.assert_array_equal(dataset.get_sample(0)['gt'],
                                  _expected_gt())
    with pytest.raises(FileNotFoundError, match='no image/mask folders'):
        GrabCutDataset(root)
    with pytest.raises(FileNotFoundError, match='no instances'):
        GrabCutDataset(root, layout='focuscut', img_dir='photos',
                       gt_dir='labels')
    with pytest.raises(ValueError, match='layout must be one of'):
        GrabCutDataset(root, layout='coco')


def _write_sbd(root, maps, ids=None):
    for image_id, inst in maps.items():
        _write_rgb(osp.join(root, 'img', image_id + '.jpg'),
                   _image(h=inst.shape[0], w=inst.shape[1]))
        os.makedirs(osp.join(root, 'inst'), exist_ok=True)
        scipy.io.savemat(
            osp.join(root, 'inst', image_id + '.mat'), {
                'GTinst':
                dict(
                    Segmentation=inst.astype(np.uint8),
                    Boundaries=np.zeros((1, 1), object),
                    Categories=np.ones((inst.max(), 1), np.uint8))
            })
    with open(osp.join(root, 'val.txt'), 'w') as f:
        f.write('\n'.join(ids or list(maps)) + '\n')


def test_sbd_instances_cache_and_masks(tmp_path):
    root = str(tmp_path / 'benchmark_RELEASE' / 'dataset')
    first = np.zeros((H, W), np.uint8)
    first[1:4, 1:4] = 3
    first[6:9, 6:9] = 1
    second = np.zeros((H + 2, W), np.uint8)
    second[5:7, 2:9] = 2
    _write_sbd(root, {'2008_000002': first, '2007_000033': second})
    dataset = SBDEvalDataset(root)
    # val.txt order, ids ascending
    assert dataset.names == [
        '2008_000002#001', '2008_000002#003', '2007_000033#002'
    ]
    sample = dataset.get_sample(1)
    assert sample['image'].shape == (H, W, 3)
    np.testing.assert_array_equal(sample['gt'], (first == 3).astype(np.int8))
    assert dataset.get_sample(2)['gt'].shape == (H + 2, W)
    cache = osp.join(root, 'val_instances.json')
    assert osp.isfile(cache)
    # the cached index is used: an edited .mat does not change the list ...
    edited = first.copy()
    edited[0, 0] = 9
    _write_sbd(root, {'2008_000002': edited, '2007_000033': second})
    assert len(SBDEvalDataset(root)) == 3
    assert len(SBDEvalDataset(root, cache=False)) == 4
    # ... until val.txt changes; the parent folder works as data_root too
    _write_sbd(root, {'2008_000002': edited}, ids=['2008_000002'])
    parent = SBDEvalDataset(osp.dirname(root))
    assert parent.names == [
        '2008_000002#001', '2008_000002#003', '2008_000002#009'
    ]


def test_sbd_bad_files(tmp_path):
    root = str(tmp_path)
    inst = np.zeros((H, W), np.uint8)
    inst[2:5, 2:5] = 1
    _write_sbd(root, {'a': inst}, ids=['a', 'b'])
    with pytest.raises(FileNotFoundError, match=r'inst/b\.mat'):
        SBDEvalDataset(root)
    with open(osp.join(root, 'inst', 'b.mat'), 'wb') as f:
        f.write(b'not a mat file')
    with pytest.raises(ValueError, match=r'b\.mat'):
        SBDEvalDataset(root)
    os.remove(osp.join(root, 'val.txt'))
    with pytest.raises(FileNotFoundError, match=r'val\.txt'):
        SBDEvalDataset(root)
