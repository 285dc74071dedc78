"""A procedural dataset in the real COCO-panoptic format (nothing to download).

Each image is a textured backdrop (optionally split by a wavy horizon into a
second "ground" stuff region) with 2-5 textured objects on top: ellipses,
star polygons, rings (holes), thin bent bars and bodies with thin limbs, at
log-uniform sizes, overlapping each other (occlusion). Written exactly like
COCO panoptic 2017::

    <root>/train2017/000000000001.jpg
    <root>/annotations/panoptic_train2017/000000000001.png  # R+256G+65536B
    <root>/annotations/panoptic_train2017.json              # images,
        # annotations (segments_info: id, category_id, iscrowd, bbox, area,
        # isthing), categories (id, name, supercategory, isthing, color)

and the same for ``val2017``. Every image is a pure function of
``(seed, split, index)``; a split whose JSON records the same generator
parameters and whose files all exist is reused as is.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .textures import SHAPES, random_color, random_shape, random_texture

__all__ = [
    'GENERATOR_VERSION', 'CATEGORIES', 'DEFAULT_SIZE_RANGE', 'SPLIT_SEEDS',
    'panoptic_paths', 'render_scene', 'generate_split', 'generate_dataset',
    'is_complete', 'rgb_to_id', 'id_to_rgb', 'load_panoptic'
]

GENERATOR_VERSION = 2
STUFF_NAMES = ('backdrop', 'ground')
CATEGORIES: List[dict] = (
    [dict(id=i + 1, name=name, supercategory='shape', isthing=1)
     for i, name in enumerate(SHAPES)] +
    [dict(id=len(SHAPES) + i + 1, name=name, supercategory='stuff',
          isthing=0) for i, name in enumerate(STUFF_NAMES)])
for _cat in CATEGORIES:
    _cat['color'] = [int(c) for c in
                     np.random.default_rng(_cat['id']).integers(0, 256, 3)]
_CAT_ID = {c['name']: c['id'] for c in CATEGORIES}
SPLIT_SEEDS = dict(train=0, val=1)
SPLIT_ID_OFFSET = dict(train=0, val=1_000_000)
MIN_OBJECT_AREA = 40
MIN_COLOR_DISTANCE = 70.0
MAX_OBJECTS = 5
#: Object radius as a fraction of the shorter image side (log-uniform).
OBJECT_SCALE = (0.08, 0.4)
#: Texture contrast of objects (backgrounds use 1): colour is the main cue.
OBJECT_CONTRAST = (0.2, 0.7)
DEFAULT_SIZE_RANGE = (128, 192)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Panoptic PNG (H, W, 3) RGB uint8 -> (H, W) int64 segment ids."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids -> panoptic PNG (H, W, 3) RGB uint8."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256],
                    axis=-1).astype(np.uint8)


def panoptic_paths(root: str, split: str) -> Dict[str, str]:
    """The COCO-2017 layout of one split below ``root``."""
    return dict(
        img_dir=osp.join(root, f'{split}2017'),
        seg_dir=osp.join(root, 'annotations', f'panoptic_{split}2017'),
        ann_file=osp.join(root, 'annotations', f'panoptic_{split}2017.json'))


def _shading(size: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative light field around 1 (H, W, 1)."""
    h, w = size
    coarse = rng.uniform(0.75, 1.2, (2, 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)[...,
                                                                       None]


def _distinct_color(rng: np.random.Generator,
                    avoid: np.ndarray) -> np.ndarray:
    """A colour at least MIN_COLOR_DISTANCE away from ``avoid`` if found."""
    color = random_color(rng)
    for _ in range(8):
        if np.linalg.norm(color - avoid) >= MIN_COLOR_DISTANCE:
            break
        color = random_color(rng)
    return color


def render_scene(rng: np.random.Generator, size: Tuple[int, int]
                 ) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Compose one image.

    Args:
        rng: the image's own generator.
        size: (H, W).

    Returns:
        image (H, W, 3) uint8 RGB, label (H, W) int32 index map (0..n-1 into
        the returned list; every pixel labelled), category ids (n,) of the
        segments, stuff first. Segments absent from ``label`` are dropped.
    """
    h, w = size
    image = random_texture(size, rng, random_color(rng)) * _shading(size, rng)
    label = np.zeros(size, np.int32)
    cats = [_CAT_ID['backdrop']]
    if rng.random() < 0.5:
        ys, xs = np.mgrid[0:h, 0:w]
        horizon = h * rng.uniform(0.35, 0.8) + h * rng.uniform(
            0, 0.08) * np.sin(xs / w * rng.uniform(2, 9) + rng.uniform(0, 6))
        ground = ys > horizon
        if ground.sum() >= MIN_OBJECT_AREA:
            tex = random_texture(size, rng, random_color(rng))
            image[ground] = (tex * _shading(size, rng))[ground]
            label[ground] = len(cats)
            cats.append(_CAT_ID['ground'])
    num_stuff = len(cats)
    for _ in range(int(rng.integers(2, MAX_OBJECTS + 1))):
        for _attempt in range(10):
            scale = float(np.exp(rng.uniform(*np.log(OBJECT_SCALE))))
            kind, mask = random_shape(size, rng, scale)
            if mask.sum() < MIN_OBJECT_AREA:
                continue
            trial = label.copy()
            trial[mask] = len(cats)
            areas = np.bincount(trial.ravel(), minlength=len(cats) + 1)
            if (areas[num_stuff:] >= MIN_OBJECT_AREA).all():
                break
        else:
            continue
        color = _distinct_color(rng, image[mask].mean(axis=0))
        tex = random_texture(size, rng, color,
                             rng.uniform(*OBJECT_CONTRAST))
        image[mask] = (tex * _shading(size, rng))[mask]
        label = trial
        cats.append(_CAT_ID[kind])
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.9))
    image = image + rng.normal(0, rng.uniform(1, 6), image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    present = np.flatnonzero(np.bincount(label.ravel(),
                                         minlength=len(cats)))
    remap = np.zeros(len(cats), np.int32)
    remap[present] = np.arange(len(present))
    return image, remap[label], [cats[i] for i in present]


def _segment_info(mask: np.ndarray, seg_id: int, cat_id: int) -> dict:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    isthing = next(c['isthing'] for c in CATEGORIES if c['id'] == cat_id)
    return dict(id=int(seg_id), category_id=int(cat_id), iscrowd=0,
                bbox=[x0, y0, int(xs.max()) - x0 + 1,
                      int(ys.max()) - y0 + 1],
                area=int(mask.sum()), isthing=int(isthing))


def _generator_params(split: str, num_images: int, seed: int,
                      size_range: Tuple[int, int]) -> dict:
    return dict(version=GENERATOR_VERSION, split=split,
                num_images=int(num_images), seed=int(seed),
                size_range=[int(s) for s in size_range])


def is_complete(root: str, split: str, num_images: int, seed: int,
                size_range: Tuple[int, int]) -> bool:
    """Whether ``split`` below ``root`` holds exactly this generator's data."""
    paths = panoptic_paths(root, split)
    if not osp.isfile(paths['ann_file']):
        return False
    try:
        with open(paths['ann_file']) as f:
            coco = json.load(f)
    except (OSError, ValueError):
        return False
    expected = _generator_params(split, num_images, seed, size_range)
    if coco.get('info', {}).get('generator') != expected:
        return False
    return all(
        osp.isfile(osp.join(paths['img_dir'], img['file_name']))
        for img in coco['images']) and all(
            osp.isfile(osp.join(paths['seg_dir'], ann['file_name']))
            for ann in coco['annotations'])


def generate_split(root: str, split: str, num_images: int, seed: int = 0,
                   size_range: Tuple[int, int] = DEFAULT_SIZE_RANGE,
                   force: bool = False) -> Dict[str, str]:
    """Write (or reuse) one split; returns its :func:`panoptic_paths`.

    Args:
        root: dataset root (created if needed).
        split: split name, e.g. ``'train'`` or ``'val'``.
        num_images: number of images.
        seed: base seed; image ``i`` uses ``(seed, split seed, i)``.
        size_range: inclusive range of image heights and widths in pixels.
        force: regenerate even if a complete copy exists.
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    lo, hi = size_range
    if not 32 <= lo <= hi:
        raise ValueError(f'size_range must satisfy 32 <= lo <= hi, '
                         f'got {size_range}')
    paths = panoptic_paths(root, split)
    if not force and is_complete(root, split, num_images, seed, size_range):
        return paths
    os.makedirs(paths['img_dir'], exist_ok=True)
    os.makedirs(paths['seg_dir'], exist_ok=True)
    if osp.exists(paths['ann_file']):
        os.remove(paths['ann_file'])  # the JSON marks completion: last
    split_seed = SPLIT_SEEDS.get(split, sum(map(ord, split)))
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_seed, index])
        size = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
        image, label, cats = render_scene(rng, size)
        seg_ids = rng.choice(np.arange(1, 1 << 24), len(cats), replace=False)
        image_id = SPLIT_ID_OFFSET.get(split, 0) + index + 1
        stem = f'{image_id:012d}'
        cv2.imwrite(osp.join(paths['img_dir'], stem + '.jpg'),
                    image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(osp.join(paths['seg_dir'], stem + '.png'),
                    id_to_rgb(seg_ids[label])[..., ::-1])
        images.append(dict(id=image_id, file_name=stem + '.jpg',
                           height=size[0], width=size[1]))
        annotations.append(dict(
            image_id=image_id, file_name=stem + '.png',
            segments_info=[_segment_info(label == i, seg_ids[i], cat)
                           for i, cat in enumerate(cats)]))
    coco = dict(
        info=dict(description='InterFormer quickstart synthetic panoptic',
                  generator=_generator_params(split, num_images, seed,
                                              size_range)),
        licenses=[], images=images, annotations=annotations,
        categories=CATEGORIES)
    tmp = paths['ann_file'] + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp, paths['ann_file'])
    return paths


def generate_dataset(root: str,
                     num_train: int = 300,
                     num_val: int = 40,
                     seed: int = 0,
                     size_range: Tuple[int, int] = DEFAULT_SIZE_RANGE,
                     force: bool = False) -> Dict[str, Dict[str, str]]:
    """Write (or reuse) the ``train`` and held-out ``val`` splits."""
    return dict(
        train=generate_split(root, 'train', num_train, seed, size_range,
                             force),
        val=generate_split(root, 'val', num_val, seed, size_range, force))


def load_panoptic(ann_file: str) -> dict:
    """Read a COCO-panoptic JSON with a clear error if it is missing."""
    from ..datasets.file_checks import load_json_file
    return load_json_file(ann_file, 'panoptic annotation file')

