"""COCO panoptic segmentation as a source of training objects."""
import os.path as osp
from typing import List

from mmseg.registry import DATASETS

from .file_checks import load_json_file
from .object_dataset import BaseObjectDataset
from .transforms.loading import SOURCE_PANOPTIC

__all__ = ['COCOPanopticDataset']


@DATASETS.register_module()
class COCOPanopticDataset(BaseObjectDataset):
    """COCO 2017 panoptic annotations: every segment is a candidate object.

    Things and stuff segments alike (``isthing`` is recorded but not used),
    as in the official InterFormer training. Expected layout (defaults)::

        data/coco2017/
            train2017/000000000009.jpg ...
            annotations/panoptic_train2017.json
            annotations/panoptic_train2017/000000000009.png ...

    The JSON follows the COCO panoptic format: ``images`` (``id``,
    ``file_name``, ``height``, ``width``), ``annotations`` (``image_id``,
    ``file_name`` of the PNG, ``segments_info`` with ``id``,
    ``category_id``, ``iscrowd``, ``area``) and ``categories`` (``id``,
    ``isthing``). PNG pixel ids are ``R + 256 G + 256² B``.

    Args:
        ann_file (str): Panoptic JSON, relative to ``data_root``.
            Default: 'annotations/panoptic_train2017.json'.
        data_prefix (dict): ``img_path`` (image folder) and
            ``seg_map_path`` (PNG folder), relative to ``data_root``.
            Default: ``dict(img_path='train2017',
            seg_map_path='annotations/panoptic_train2017')``.
        **kwargs: :class:`BaseObjectDataset` arguments (``ignore_file``,
            ``filter_empty``, ``data_root``, ``pipeline``, ...).
    """

    def __init__(self,
                 ann_file: str = 'annotations/panoptic_train2017.json',
                 data_prefix: dict = dict(
                     img_path='train2017',
                     seg_map_path='annotations/panoptic_train2017'),
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def num_candidates(self, data_info: dict) -> int:
        """Number of segments listed for the image.

        Args:
            data_info (dict): One entry of the data list.

        Returns:
            int: ``len(segments)``.
        """
        return len(data_info['segments'])

    def load_data_list(self) -> List[dict]:
        """Read the panoptic JSON.

        Returns:
            list[dict]: One data info per annotated image, with ``img_path``,
            ``img_id``, ``seg_map_path``, ``segments`` (``id``,
            ``category_id``, ``isthing``, ``iscrowd``) and
            ``segment_source='panoptic'``.
        """
        self._check_ann_file()
        content = load_json_file(self.ann_file)
        try:
            images = {img['id']: img for img in content['images']}
            isthing = {
                cat['id']: int(cat.get('isthing', 1))
                for cat in content.get('categories', [])
            }
            annotations = content['annotations']
        except (KeyError, TypeError) as error:
            raise ValueError(f'{self.ann_file} is not a COCO panoptic JSON '
                             f'(missing {error})') from error
        img_prefix = self.data_prefix.get('img_path', '')
        seg_prefix = self.data_prefix.get('seg_map_path', '')
        data_list = []
        for ann in annotations:
            try:
                image = images[ann['image_id']]
                segments = [
                    dict(
                        id=int(seg['id']),
                        category_id=seg.get('category_id'),
                        isthing=isthing.get(seg.get('category_id'), 1),
                        iscrowd=int(seg.get('iscrowd', 0)))
                    for seg in ann['segments_info']
                ]
                data_list.append(
                    dict(
                        img_path=osp.join(img_prefix, image['file_name']),
                        img_id=image['id'],
                        seg_map_path=osp.join(seg_prefix, ann['file_name']),
                        segments=segments,
                        segment_source=SOURCE_PANOPTIC,
                        seg_fields=[]))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(
                    f'{self.ann_file}: bad panoptic annotation for image '
                    f'{ann.get("image_id")}: {error!r}') from error
        return data_list
