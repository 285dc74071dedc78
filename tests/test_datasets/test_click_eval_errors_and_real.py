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
    with pytest.raises(ValueError,
                       match=r'(cannot read|damaged) image file .*a\.jpg'):
        dataset.get_sample(0)


def _textured(height=96, width=128):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('ext', ['.jpg', '.png'])
def test_truncated_image_is_an_error_naming_it(tmp_path, ext):
    """libjpeg would fill the missing rows grey without naming the file.
    """
    mask = np.zeros((96, 128), np.uint8)
    mask[20:60, 30:90] = 255
    _folder(str(tmp_path), {'a': mask})
    os.remove(tmp_path / 'img' / 'a.png')
    data = cv2.imencode(ext, _textured())[1].tobytes()
    path = tmp_path / 'img' / f'a{ext}'
    path.write_bytes(data[:len(data) * 2 // 5])
    # what happens without the check: a whole-looking decode
    if ext == '.jpg':
        assert cv2.imread(str(path)) is not None
    with pytest.raises(ValueError, match=rf'damaged image file .*a\{ext}'):
        GrabCutDataset(str(tmp_path)).get_sample(0)
    # trailing bytes after a complete image are not damage
    path.write_bytes(data + b'\x00' * 7 + b'junk')
    assert GrabCutDataset(str(tmp_path)).get_sample(0)['image'].shape == \
        (96, 128, 3)


def test_truncated_real_image_is_an_error(grabcut_root, tmp_path):
    """The first 20 KB of a real GrabCut photo (any of them)."""
    import shutil

    from interformer.datasets.image_check import (
        DamagedImageError,
        check_image_file,
    )
    names = sorted(f for f in os.listdir(osp.join(grabcut_root, 'img'))
                   if f.lower().endswith(('.jpg', '.jpeg')))
    if not names:
        pytest.skip('no JPEG in the GrabCut folder')
    big = [n for n in names
           if osp.getsize(osp.join(grabcut_root, 'img', n)) > 40000]
    name = (big or names)[0]
    src = osp.join(grabcut_root, 'img', name)
    check_image_file(src)  # the whole file passes
    cut = tmp_path / name
    shutil.copyfile(src, cut)
    with open(cut, 'r+b') as f:
        f.truncate(min(20000, osp.getsize(src) // 2))
    with pytest.raises(DamagedImageError, match=name):
        check_image_file(str(cut))


@pytest.mark.parametrize('values', [(0, 7, 255), (0, 7, 100)])
def test_undefined_mask_values_are_named_with_the_layout_rule(
        tmp_path, values):
    mask = np.zeros((10, 10), np.uint8)
    mask[0:3] = values[1]
    mask[5:8, 5:8] = values[2]
    _folder(str(tmp_path), {'a': mask})
    with pytest.raises(ValueError) as info:
        GrabCutDataset(str(tmp_path)).get_sample(0)
    message = str(info.value)
    assert 'a.png' in message and '{7' in message
    assert 'values found: {' + ', '.join(map(str, values)) + '}' in message
    assert '128 = ignore band' in message and 'focuscut: ' in message


def test_empty_object_names_the_values_found(tmp_path):
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 2:5] = 128
    _folder(str(tmp_path), {'a': mask})
    with pytest.raises(ValueError,
                       match=r'a\.png .*empty object: values found '
                       r'\{0, 128\}'):
        BerkeleyDataset(str(tmp_path)).get_sample(0)


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
    with pytest.raises(ValueError, match=r'gt/b\.png .*has an empty object'):
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
