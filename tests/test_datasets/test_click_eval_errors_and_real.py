"""Click-test datasets: bad data errors, and the real GrabCut / Berkeley."""
import csv
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from interformer.datasets.click_eval import (
    BerkeleyDataset,
    DAVISDataset,
    GrabCutDataset,
    SBDEvalDataset,
)


def _folder(root, masks):
    """img/ + gt/ with one 10x10 image per mask."""
    os.makedirs(osp.join(root, 'img'), exist_ok=True)
    os.makedirs(osp.join(root, 'gt'), exist_ok=True)
    for stem, mask in masks.items():
        cv2.imwrite(osp.join(root, 'img', stem + '.png'),
                    np.full((10, 10, 3), 90, np.uint8))
        cv2.imwrite(osp.join(root, 'gt', stem + '.png'), mask)


def _good():
    mask = np.zeros((10, 10), np.uint8)
    mask[3:6, 3:6] = 255
    return mask


@pytest.mark.parametrize(
    'cls', [GrabCutDataset, BerkeleyDataset, DAVISDataset, SBDEvalDataset])
def test_missing_data_root_names_it(tmp_path, cls):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        cls(missing)


def test_missing_mask_folder(tmp_path):
    os.makedirs(tmp_path / 'img')
    with pytest.raises(FileNotFoundError, match='no image/mask folders'):
        GrabCutDataset(str(tmp_path))


def test_missing_mask_names_the_image(tmp_path):
    _folder(str(tmp_path), {'a': _good()})
    cv2.imwrite(str(tmp_path / 'img' / 'b.png'), np.zeros((4, 4, 3)))
    with pytest.raises(FileNotFoundError, match=r'img/b\.png'):
        GrabCutDataset(str(tmp_path))


def test_unreadable_image_names_the_file(tmp_path):
    _folder(str(tmp_path), {'a': _good()})
    os.remove(tmp_path / 'img' / 'a.png')
    (tmp_path / 'img' / 'a.jpg').write_bytes(b'\xff\xd8 truncated jpeg')
    dataset = GrabCutDataset(str(tmp_path))
    with pytest.raises(ValueError, match=r'cannot read image file .*a\.jpg'):
        dataset.get_sample(0)


def test_unreadable_mask_names_the_file(tmp_path):
    _folder(str(tmp_path), {'a': _good()})
    (tmp_path / 'gt' / 'a.png').write_bytes(b'garbage')
    with pytest.raises(ValueError, match=r'cannot read mask file .*a\.png'):
        BerkeleyDataset(str(tmp_path)).get_sample(0)


def test_mask_of_another_size_names_the_file(tmp_path):
    _folder(str(tmp_path), {'a': _good()})
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), np.zeros((10, 12), np.uint8)
                + 255)
    with pytest.raises(ValueError, match=r'gt/a\.png has size 10x12 but its '
                       r'image .* is 10x10'):
        DAVISDataset(str(tmp_path)).get_sample(0)


def test_empty_object_names_the_file(tmp_path):
    mask = np.zeros((10, 10), np.uint8)
    mask[2:4, 2:4] = 128  # only the ignore band: no object
    _folder(str(tmp_path), {'a': _good(), 'b': mask})
    dataset = GrabCutDataset(str(tmp_path))
    assert (dataset.get_sample(0)['gt'] == 1).sum() == 9
    with pytest.raises(ValueError, match=r'gt/b\.png has an empty object'):
        dataset.get_sample(1)
    with pytest.raises(IndexError):
        dataset.get_sample(2)


def _manifest(root):
    with open(osp.join(root, 'manifest.tsv')) as f:
        return list(csv.DictReader(f, delimiter='\t'))


@pytest.mark.parametrize('cls,fixture,num', [
    (GrabCutDataset, 'grabcut_root', 50),
    (BerkeleyDataset, 'berkeley_root', 100),
])
def test_real_sets_match_their_manifest(request, cls, fixture, num):
    root = request.getfixturevalue(fixture)
    dataset = cls(root)
    assert len(dataset) == num
    with open(osp.join(root, 'list', 'val.txt')) as f:
        assert dataset.names == f.read().split()
    for index, row in enumerate(_manifest(root)):
        sample = dataset.get_sample(index)
        assert sample['name'] == row['stem']
        assert sample['image'].shape == (int(row['height']),
                                         int(row['width']), 3)
        gt = sample['gt']
        assert (gt == 1).sum() == int(row['fg_px'])
        assert (gt == 0).sum() == int(row['bg_px'])
        assert (gt == -1).sum() == int(row.get('ignore_px') or 0)
