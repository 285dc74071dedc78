"""LVIS v1 instance annotations as a source of training objects."""
import json
import logging
from typing import List

from mmseg.registry import DATASETS

from .file_checks import json_error
from .object_dataset import BaseInstanceDataset

# LVIS v1 images carry no file_name, only e.g.
# 'http://images.cocodataset.org/train2017/000000391895.jpg'
COCO_URL_PARTS = 2  # '<split folder>/<file name>' at the end of coco_url

__all__ = ['LVISDataset']


@DATASETS.register_module()
class LVISDataset(BaseInstanceDataset):
    """LVIS v1 polygons on COCO 2017 images; every instance is a candidate.

    The JSON is read with the ``lvis`` API. LVIS v1 images are COCO 2017
    images named by ``coco_url``; its last two parts
    (``train2017/000000391895.jpg``) are joined to ``data_prefix['img_path']``
    (LVIS v1 *val* uses COCO train2017 and val2017 images alike). An image
    with a ``file_name`` (LVIS v0.5) uses that instead.

    Per sample (in ``LoadSegmentIdMap``): polygons are rasterised with
    pycocotools, shuffled, and painted later-on-top; a polygon more than
    50 % covered by earlier ones, or covering more than 50 % of one of them,
    is skipped; empty ones too.

    Expected layout (defaults, ``data_root='data'``)::

        data/lvis/lvis_v1_train.json
        data/coco2017/train2017/000000000009.jpg ...

    Args:
        ann_file (str): LVIS JSON, relative to ``data_root``.
            Default: 'lvis/lvis_v1_train.json'.
        data_prefix (dict): ``img_path``: folder holding ``train2017/`` and
            ``val2017/``, relative to ``data_root``.
            Default: ``dict(img_path='coco2017')``.
        **kwargs: :class:`BaseInstanceDataset` arguments
            (``shuffle_instances``, ``overlap_thr``, ``ignore_file``, ...).
    """

    def __init__(self,
                 ann_file: str = 'lvis/lvis_v1_train.json',
                 data_prefix: dict = dict(img_path='coco2017'),
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    @staticmethod
    def image_file(image: dict) -> str:
        """Image path relative to the image prefix.

        Args:
            image (dict): LVIS ``images`` entry.

        Returns:
            str: e.g. ``'train2017/000000391895.jpg'``.
        """
        if image.get('file_name'):
            return image['file_name']
        url = image.get('coco_url')
        if not url:
            raise ValueError(
                f'LVIS image {image.get("id")} has neither coco_url nor '
                'file_name')
        return '/'.join(url.rstrip('/').split('/')[-COCO_URL_PARTS:])

    def load_data_list(self) -> List[dict]:
        """Read the LVIS JSON with the ``lvis`` API.

        Returns:
            list[dict]: One instance-style data info per image.
        """
        from lvis import LVIS
        self._check_ann_file()
        logging.getLogger('lvis').setLevel(logging.WARNING)
        try:
            api = LVIS(self.ann_file)
        except json.JSONDecodeError as error:
            raise json_error(self.ann_file, error) from None
        except (AssertionError, KeyError, TypeError) as error:
            raise ValueError(f'{self.ann_file} is not an LVIS JSON '
                             f'({error!r})') from error
        data_list = []
        for img_id in sorted(api.imgs):
            image = api.imgs[img_id]
            data_list.append(
                self._image_info(image, api.img_ann_map.get(img_id, []),
                                 self.image_file(image)))
        return data_list
