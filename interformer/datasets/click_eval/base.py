"""Common machinery of the click-test datasets.

A click-test dataset is a list of *instances*: one image and one object mask.
``get_sample(i)`` returns::

    dict(image=(H, W, 3) uint8 RGB,
         gt=(H, W) int8 with 1 = object, 0 = background, -1 = ignore,
         name=str)

Two folder layouts exist for GrabCut, Berkeley and DAVIS:

* ``'ritm'``: an image folder and a mask folder, masks matched to images by
  file stem (RITM / f-BRS releases: ``data_GT``/``boundary_GT``,
  ``images``/``masks``, ``img``/``gt``). Mask values are dataset-specific.
* ``'focuscut'``: FocusCut's "ISF" layout: ``img/<name>.<ext>`` and one
  indexed PNG per object, ``gt/<name>#001.png``, with 1 = object and
  255 = void.

Bad data raises one error naming the offending file: a truncated image
(:func:`~interformer.datasets.image_check.check_image_file`), mask values a
layout does not define (with the values found and the layout's mapping), an
empty object.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from ..image_check import check_image_file

__all__ = [
    'ClickEvalDataset', 'FolderClickEvalDataset', 'GT_OBJECT', 'GT_BACKGROUND',
    'GT_IGNORE', 'IMAGE_EXTENSIONS', 'LAYOUTS', 'read_rgb_image',
    'read_mask_cv2', 'read_mask_indexed'
]

GT_OBJECT = 1
GT_BACKGROUND = 0
GT_IGNORE = -1
FOCUSCUT_OBJECT = 1
FOCUSCUT_VOID = 255
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')
LAYOUTS = ('auto', 'ritm', 'focuscut')
FOCUSCUT_IMG_DIR = 'img'
FOCUSCUT_GT_DIR = 'gt'
# ``<name>#<object id>.png``, e.g. ``teddy#001.png``.
FOCUSCUT_GT_PATTERN = re.compile(r'^(?P<name>.+)#(?P<obj>\d+)\.png$',
                                 re.IGNORECASE)


def read_rgb_image(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded as an image.
    """
    check_image_file(path)  # missing / truncated: an error naming it
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'cannot read image file {path}: not a decodable '
                         'image')
    return np.ascontiguousarray(image[:, :, ::-1])


def read_mask_cv2(path: str) -> np.ndarray:
    """Read a mask as OpenCV does (as RITM's loaders do): (H, W, C) uint8.

    Grey masks come back with one channel; colour masks in BGR order.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'mask file not found: {path}')
    check_image_file(path)
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f'cannot read mask file {path}: not a decodable '
                         'image')
    if mask.dtype != np.uint8:
        raise ValueError(f'mask file {path} has dtype {mask.dtype}; '
                         'expected an 8-bit mask')
    if mask.ndim == 2:
        mask = mask[:, :, None]
    return mask


def read_mask_indexed(path: str) -> np.ndarray:
    """Read a mask with PIL, keeping palette indices: (H, W) uint8."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'mask file not found: {path}')
    try:
        with Image.open(path) as img:
            mask = np.array(img)
    except Exception as err:  # PIL raises many types for bad files
        raise ValueError(f'cannot read mask file {path}: '
                         f'{type(err).__name__}: {err}') from None
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    if mask.dtype != np.uint8:
        raise ValueError(f'mask file {path} has dtype {mask.dtype}; '
                         'expected an 8-bit mask')
    return mask


def _values(values) -> str:
    values = [int(v) for v in values]
    shown = ', '.join(map(str, values[:12]))
    return '{' + shown + (f', ... ({len(values)} values)}}'
                          if len(values) > 12 else '}')


def _list_images(folder: str) -> Dict[str, str]:
    """Map file stem -> file name for the image files in ``folder``."""
    stems: Dict[str, str] = {}
    for fname in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(fname)
        if ext.lower() in IMAGE_EXTENSIONS and osp.isfile(
                osp.join(folder, fname)):
            stems.setdefault(stem, fname)
    return stems


class ClickEvalDataset:
    """Base class: a list of (image file, mask file, name) instances.

    Subclasses fill ``self.instances`` and implement :meth:`load_gt`.

    Args:
        data_root: the dataset folder.
    """

    def __init__(self, data_root: str) -> None:
        data_root = osp.expanduser(str(data_root))
        if not osp.isdir(data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: data_root {data_root!r} does not '
                'exist or is not a folder')
        self.data_root = data_root
        self.instances: List[dict] = []

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> dict:
        return self.get_sample(index)

    @property
    def names(self) -> List[str]:
        """The instance names, in index order."""
        return [inst['name'] for inst in self.instances]

    def load_gt(self, instance: dict) -> np.ndarray:
        """Return the (H, W) int8 gt (1 / 0 / -1) of one instance."""
        raise NotImplementedError

    def get_sample(self, index: int) -> dict:
        """Load instance ``index``.

        Returns:
            dict: ``image`` (H, W, 3) uint8 RGB, ``gt`` (H, W) int8 with
            1 object / 0 background / -1 ignore, ``name`` str.

        Raises:
            IndexError: ``index`` is out of range.
            ValueError: the mask does not match the image size, or the
                object is empty (the message names the mask file).
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f'instance index {index} out of range for '
                             f'{type(self).__name__} of {len(self)}')
        instance = self.instances[index]
        image = read_rgb_image(instance['img_path'])
        gt = self.load_gt(instance)
        if gt.shape != image.shape[:2]:
            raise ValueError(
                f'mask {instance["gt_path"]} has size {gt.shape[0]}x'
                f'{gt.shape[1]} but its image {instance["img_path"]} is '
                f'{image.shape[0]}x{image.shape[1]}')
        if not np.any(gt == GT_OBJECT):
            raise ValueError(f'mask {instance["gt_path"]} has an empty '
                             f'object (instance {instance["name"]!r})')
        return dict(image=image, gt=gt, name=instance['name'])

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(data_root={self.data_root!r}, '
                f'instances={len(self)})')


class FolderClickEvalDataset(ClickEvalDataset):
    """An image folder + a mask folder, in the RITM or FocusCut layout.

    Args:
        data_root: the dataset folder.
        layout: ``'auto'`` (default), ``'ritm'`` or ``'focuscut'``. Auto
            picks FocusCut when ``gt/`` holds ``<name>#<id>.png`` files,
            else the first RITM folder pair (:attr:`RITM_DIRS`) present.
        img_dir: image folder (relative to ``data_root``); overrides the
            layout's default.
        gt_dir: mask folder (relative to ``data_root``).
    """

    #: RITM (image folder, mask folder) pairs, tried in order.
    RITM_DIRS: Sequence[Tuple[str, str]] = (('img', 'gt'), )
    #: The values a RITM-layout mask may hold (None: any) and how
    #: :meth:`decode_ritm_mask` maps them (for the error messages).
    RITM_VALUES: Optional[Tuple[int, ...]] = None
    RITM_RULE = ''
    FOCUSCUT_VALUES = (GT_BACKGROUND, FOCUSCUT_OBJECT, FOCUSCUT_VOID)
    FOCUSCUT_RULE = '0 = background, 1 = object, 255 = void (ignored)'

    def __init__(self,
                 data_root: str,
                 layout: str = 'auto',
                 img_dir: Optional[str] = None,
                 gt_dir: Optional[str] = None) -> None:
        super().__init__(data_root)
        if layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, '
                             f'got {layout!r}')
        if layout == 'auto':
            layout = self._detect_layout(gt_dir)
        self.layout = layout
        if layout == 'focuscut':
            img_dir = img_dir or FOCUSCUT_IMG_DIR
            gt_dir = gt_dir or FOCUSCUT_GT_DIR
        elif img_dir is None or gt_dir is None:
            pair = self._find_ritm_dirs()
            img_dir, gt_dir = img_dir or pair[0], gt_dir or pair[1]
        self.img_dir = self._require_dir(img_dir)
        self.gt_dir = self._require_dir(gt_dir)
        if layout == 'focuscut':
            self.instances = self._focuscut_instances()
        else:
            self.instances = self._ritm_instances()
        if not self.instances:
            raise FileNotFoundError(
                f'{type(self).__name__}: no instances found in '
                f'{self.gt_dir} ({layout} layout)')

    # ----------------------------------------------------------- discovery
    def _require_dir(self, name: str) -> str:
        path = osp.join(self.data_root, name)
        if not osp.isdir(path):
            raise FileNotFoundError(
                f'{type(self).__name__}: folder {path!r} does not exist')
        return path

    def _detect_layout(self, gt_dir: Optional[str]) -> str:
        folder = osp.join(self.data_root, gt_dir or FOCUSCUT_GT_DIR)
        if osp.isdir(folder) and any(
                FOCUSCUT_GT_PATTERN.match(f) for f in os.listdir(folder)):
            return 'focuscut'
        return 'ritm'

    def _find_ritm_dirs(self) -> Tuple[str, str]:
        for img_dir, gt_dir in self.RITM_DIRS:
            if osp.isdir(osp.join(self.data_root, img_dir)) and osp.isdir(
                    osp.join(self.data_root, gt_dir)):
                return img_dir, gt_dir
        expected = ', '.join(f'{i}/ + {g}/' for i, g in self.RITM_DIRS)
        raise FileNotFoundError(
            f'{type(self).__name__}: no image/mask folders in '
            f'{self.data_root!r} (expected one of: {expected}, or gt/ with '
            '<name>#001.png files)')

    def _ritm_instances(self) -> List[dict]:
        images = _list_images(self.img_dir)
        masks = _list_images(self.gt_dir)
        instances = []
        for stem, fname in images.items():
            if stem not in masks:
                raise FileNotFoundError(
                    f'no mask for image {osp.join(self.img_dir, fname)}: '
                    f'expected {osp.join(self.gt_dir, stem)}.<ext>')
            instances.append(
                dict(
                    name=stem,
                    img_path=osp.join(self.img_dir, fname),
                    gt_path=osp.join(self.gt_dir, masks[stem])))
        return instances

    def _focuscut_instances(self) -> List[dict]:
        images = _list_images(self.img_dir)
        instances = []
        for fname in sorted(os.listdir(self.gt_dir)):
            match = FOCUSCUT_GT_PATTERN.match(fname)
            if match is None:
                continue
            stem = match.group('name')
            if stem not in images:
                raise FileNotFoundError(
                    f'no image for mask {osp.join(self.gt_dir, fname)}: '
                    f'expected {osp.join(self.img_dir, stem)}.<ext>')
            instances.append(
                dict(
                    name=osp.splitext(fname)[0],
                    img_path=osp.join(self.img_dir, images[stem]),
                    gt_path=osp.join(self.gt_dir, fname)))
        return instances

    # -------------------------------------------------------------- decoding
    def load_gt(self, instance: dict) -> np.ndarray:
        path = instance['gt_path']
        if self.layout == 'focuscut':
            raw = read_mask_indexed(path)
            allowed, rule = self.FOCUSCUT_VALUES, self.FOCUSCUT_RULE
            gt = np.full(raw.shape, GT_BACKGROUND, np.int8)
            gt[raw == FOCUSCUT_OBJECT] = GT_OBJECT
            gt[raw == FOCUSCUT_VOID] = GT_IGNORE
        else:
            raw = read_mask_cv2(path)
            allowed, rule = self.RITM_VALUES, self.RITM_RULE
            gt = self.decode_ritm_mask(raw)
        values = np.unique(raw)
        where = (f'mask {path} ({type(self).__name__}, {self.layout} '
                 f'layout: {rule})')
        if allowed is not None:
            unknown = sorted(set(values.tolist()) - set(allowed))
            if unknown:
                raise ValueError(
                    f'{where} holds values {_values(unknown)} that the '
                    f'layout does not define (values found: '
                    f'{_values(values)}; the layouts: {self.layout_rules()})')
        if not np.any(gt == GT_OBJECT):
            raise ValueError(f'{where} has an empty object: values found '
                             f'{_values(values)}')
        return gt

    @classmethod
    def layout_rules(cls) -> str:
        """How each layout maps mask values, in words."""
        return f'ritm: {cls.RITM_RULE}; focuscut: {cls.FOCUSCUT_RULE}'

    def decode_ritm_mask(self, raw: np.ndarray) -> np.ndarray:
        """Map a RITM-layout mask (H, W, C) uint8 to (H, W) int8 gt."""
        raise NotImplementedError
