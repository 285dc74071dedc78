"""Any COCO instance-format JSON as a source of training objects."""
import contextlib
import io
import json
from typing import List

from mmseg.registry import DATASETS

from .file_checks import json_error
from .object_dataset import BaseInstanceDataset

__all__ = ['COCOInstanceDataset']


@DATASETS.register_module()
class COCOInstanceDataset(BaseInstanceDataset):
    """Your own annotations in COCO instance format (``instances_*.json``).

    Read with pycocotools. ``images`` need ``id``, ``file_name``,
    ``height``, ``width``; ``annotations`` need ``image_id`` and a
    ``segmentation`` given as polygons, uncompressed RLE or compressed RLE.
    Every annotation is a candidate object; ``iscrowd=1`` ones become ignore
    pixels by default (``crowd_as_ignore``). Paint order and overlap rule
    as for LVIS (see :class:`BaseInstanceDataset`).

    Expected layout (example, ``data_root='data/my_dataset'``)::

        data/my_dataset/images/xxx.jpg ...
        data/my_dataset/annotations.json

    Args:
        ann_file (str): COCO JSON, relative to ``data_root``.
        data_prefix (dict): ``img_path``: folder that ``file_name`` is
            relative to. Default: ``dict(img_path='')``.
        **kwargs: :class:`BaseInstanceDataset` arguments.
    """

    def __init__(self,
                 ann_file: str = '',
                 data_prefix: dict = dict(img_path=''),
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the COCO JSON with pycocotools.

        Returns:
            list[dict]: One instance-style data info per image.
        """
        from pycocotools.coco import COCO
        self._check_ann_file()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                api = COCO(self.ann_file)
        except json.JSONDecodeError as error:
            raise json_error(self.ann_file, error) from None
        except (AssertionError, KeyError, TypeError) as error:
            raise ValueError(f'{self.ann_file} is not a COCO instance JSON '
                             f'({error!r})') from error
        data_list = []
        for img_id in sorted(api.imgs):
            image = api.imgs[img_id]
            if 'file_name' not in image:
                raise ValueError(
                    f'{self.ann_file}: image {img_id} has no file_name')
            data_list.append(
                self._image_info(image, api.imgToAnns.get(img_id, []),
                                 image['file_name']))
        return data_list
