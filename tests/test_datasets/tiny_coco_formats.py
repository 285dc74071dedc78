"""Write tiny datasets in the real COCO-panoptic, LVIS v1 and COCO formats.

Used by the training-data tests; everything is generated in a temporary
folder, nothing is read from disk.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

COCO_URL = 'http://images.cocodataset.org/{split}/{name}'

# standard training pipeline of configs/_base_/datasets/coco_lvis_512x512.py
CROP = (512, 512)


def train_pipeline(record: list = None) -> List[object]:
    """The documented training pipeline, optionally with recording hooks.

    Args:
        record (list, optional): When given, the segment-id map before the
            ObjectSampler and the sampler's results are appended to it as
            ``(id_map_before, object_id, binary_map)``.

    Returns:
        list: Transform configs / callables for a dataset ``pipeline``.
    """
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadSegmentIdMap'),
        dict(type='RandomRescale', ratio_range=(0.5, 2.0)),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PadToMinSize', size=CROP, pad_val=0, seg_pad_val=0),
        dict(type='RandomCrop', crop_size=CROP, cat_max_ratio=0.75),
        dict(type='PhotoMetricDistortion'),
        dict(type='ObjectSampler'),
        dict(type='PackSegInputs'),
    ]
    if record is not None:
        state = {}

        def before(results):
            state['before'] = results['gt_seg_map'].copy()
            return results

        def after(results):
            record.append((state['before'], results['object_id'],
                           results['gt_seg_map'].copy()))
            return results

        pipeline.insert(7, before)
        pipeline.insert(9, after)
    return pipeline


def write_image(path: str, height: int, width: int, seed: int) -> None:
    """Write a random-texture JPEG (BGR) of the given size."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(path, image)


def coco_name(image_id: int) -> str:
    return f'{image_id:012d}.jpg'


def polygon_of_box(y0: int, x0: int, y1: int, x1: int) -> List[float]:
    """A COCO polygon (x, y pairs) around pixels [y0, y1) x [x0, x1)."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rasterise(segmentation, height: int, width: int) -> np.ndarray:
    """Reference rasterisation: pycocotools, exactly as COCO.annToMask."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(
            mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation['counts'], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


# ---------------------------------------------------------------- panoptic
def write_coco_panoptic(root: str, images: Sequence[Dict]) -> str:
    """Write a COCO panoptic dataset under ``root`` (= data/coco2017).

    Args:
        root (str): Dataset root.
        images (Sequence[dict]): Per image: ``id``, ``height``, ``width``
            and ``segments``: list of ``(panoptic_id, category_id, box)``
            with ``box = (y0, x0, y1, x1)``; later boxes overwrite earlier
            ones in the PNG. Unpainted pixels stay 0 (VOID).

    Returns:
        str: Path of the panoptic JSON.
    """
    categories = [
        dict(id=1, name='person', supercategory='person', isthing=1),
        dict(id=3, name='car', supercategory='vehicle', isthing=1),
        dict(id=184, name='grass', supercategory='plant', isthing=0),
        dict(id=187, name='sky', supercategory='sky', isthing=0),
    ]
    img_entries, ann_entries = [], []
    png_dir = osp.join(root, 'annotations', 'panoptic_train2017')
    os.makedirs(png_dir, exist_ok=True)
    for spec in images:
        h, w, image_id = spec['height'], spec['width'], spec['id']
        name = coco_name(image_id)
        write_image(osp.join(root, 'train2017', name), h, w, image_id)
        ids = np.zeros((h, w), dtype=np.int64)
        for pan_id, _, (y0, x0, y1, x1) in spec['segments']:
            ids[y0:y1, x0:x1] = pan_id
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536],
                       axis=-1).astype(np.uint8)
        png_name = name.replace('.jpg', '.png')
        assert cv2.imwrite(osp.join(png_dir, png_name), rgb[..., ::-1])
        img_entries.append(
            dict(id=image_id, file_name=name, height=h, width=w))
        segments_info = []
        for pan_id, cat_id, _ in spec['segments']:
            area = int((ids == pan_id).sum())
            ys, xs = np.nonzero(ids == pan_id)
            bbox = [int(xs.min()), int(ys.min()),
                    int(xs.max() - xs.min() + 1),
                    int(ys.max() - ys.min() + 1)] if area else [0, 0, 0, 0]
            segments_info.append(
                dict(id=int(pan_id), category_id=cat_id, iscrowd=0,
                     bbox=bbox, area=area))
        ann_entries.append(
            dict(image_id=image_id, file_name=png_name,
                 segments_info=segments_info))
    content = dict(info={}, licenses=[], images=img_entries,
                   annotations=ann_entries, categories=categories)
    path = osp.join(root, 'annotations', 'panoptic_train2017.json')
    with open(path, 'w') as f:
        json.dump(content, f)
    return path


# -------------------------------------------------------------------- LVIS
def write_lvis(data_dir: str, images: Sequence[Dict],
               split: str = 'train2017') -> str:
    """Write an LVIS v1 JSON (data/lvis) + its COCO images (data/coco2017).

    Args:
        data_dir (str): The ``data/`` folder.
        images (Sequence[dict]): Per image: ``id``, ``height``, ``width``,
            ``polygons``: list of COCO polygon lists (one annotation each),
            optional ``split`` (COCO image folder).
        split (str): Default COCO folder of the images. Default:
            'train2017'.

    Returns:
        str: Path of the LVIS JSON.
    """
    img_entries, ann_entries = [], []
    ann_id = 1
    for spec in images:
        h, w, image_id = spec['height'], spec['width'], spec['id']
        name, folder = coco_name(image_id), spec.get('split', split)
        write_image(osp.join(data_dir, 'coco2017', folder, name), h, w,
                    image_id)
        # LVIS v1 images have coco_url but no file_name
        img_entries.append(
            dict(id=image_id, height=h, width=w, license=1,
                 coco_url=COCO_URL.format(split=folder, name=name),
                 flickr_url='', date_captured='',
                 neg_category_ids=[], not_exhaustive_category_ids=[]))
        for polygons in spec['polygons']:
            mask = rasterise(polygons, h, w) if polygons else None
            area = int(mask.sum()) if mask is not None else 0
            ann_entries.append(
                dict(id=ann_id, image_id=image_id, category_id=1,
                     segmentation=polygons, area=area,
                     bbox=[0, 0, 1, 1]))
            ann_id += 1
    content = dict(
        info={}, licenses=[], images=img_entries, annotations=ann_entries,
        categories=[{
            'id': 1, 'name': 'aerosol_can', 'synset': 'aerosol.n.02',
            'frequency': 'c', 'image_count': 1, 'instance_count': 1,
            'synonyms': ['aerosol_can'], 'def': 'a dispenser'
        }])
    path = osp.join(data_dir, 'lvis', 'lvis_v1_train.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(content, f)
    return path


# ----------------------------------------------------------- COCO instances
def encode_rle(mask: np.ndarray, compressed: bool) -> dict:
    """COCO RLE of a bool mask: compressed (str counts) or uncompressed."""
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return dict(size=list(rle['size']), counts=rle['counts'].decode())
    flat = mask.astype(np.uint8).flatten(order='F')
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return dict(size=list(mask.shape), counts=counts)


def write_coco_instances(root: str, images: Sequence[Dict]) -> str:
    """Write a COCO instance-format dataset: ``images/`` + ``ann.json``.

    Args:
        root (str): Dataset root.
        images (Sequence[dict]): Per image: ``id``, ``height``, ``width``,
            ``annotations``: list of dicts with ``segmentation`` (polygons or
            RLE) and optional ``iscrowd``.

    Returns:
        str: Path of the JSON.
    """
    img_entries, ann_entries = [], []
    ann_id = 1
    for spec in images:
        h, w, image_id = spec['height'], spec['width'], spec['id']
        name = f'img_{image_id}.jpg'
        write_image(osp.join(root, 'images', name), h, w, image_id)
        img_entries.append(dict(id=image_id, file_name=name, height=h,
                                width=w))
        for ann in spec['annotations']:
            area = int(rasterise(ann['segmentation'], h, w).sum())
            ann_entries.append(
                dict(id=ann_id, image_id=image_id, category_id=1,
                     segmentation=ann['segmentation'],
                     iscrowd=int(ann.get('iscrowd', 0)), area=area,
                     bbox=[0, 0, 1, 1]))
            ann_id += 1
    content = dict(images=img_entries, annotations=ann_entries,
                   categories=[dict(id=1, name='thing')])
    path = osp.join(root, 'ann.json')
    with open(path, 'w') as f:
        json.dump(content, f)
    return path
