"""Load the segment-id map of a training sample."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine import fileio
from mmseg.registry import TRANSFORMS

from .segment_maps import (
    paint_instances,
    panoptic_to_id_map,
    rgb_to_id,
    segmentation_to_mask,
)

SOURCE_PANOPTIC = 'panoptic'
SOURCE_INSTANCES = 'instances'

__all__ = ['LoadSegmentIdMap', 'SOURCE_PANOPTIC', 'SOURCE_INSTANCES']


@TRANSFORMS.register_module()
class LoadSegmentIdMap(BaseTransform):
    """Build ``gt_seg_map``, the ``(H, W)`` int32 segment-id map.

    Every annotated segment becomes one candidate object with its own id
    (0 = no segment, 255 = ignore, see
    :mod:`interformer.datasets.transforms.segment_maps`). The sample's data
    info, written by the training datasets, says how:

    * ``segment_source='panoptic'`` (:class:`COCOPanopticDataset`): the
      PNG at ``seg_map_path`` is decoded (id = R + 256 G + 256² B) and the
      ids of ``segments`` (things and stuff alike) are re-indexed to 1..N.
    * ``segment_source='instances'`` (:class:`LVISDataset`,
      :class:`COCOInstanceDataset`): the ``instances`` (polygons or RLE) are
      rasterised with pycocotools, shuffled if ``shuffle_instances``, and
      painted later-on-top with the ``overlap_thr`` rule; instances with
      ``iscrowd`` and ``crowd_as_ignore`` become ignore pixels.

    The shuffle uses numpy's global RNG (seeded per worker by mmengine),
    like mmseg's random transforms.

    Required keys: ``segment_source``, ``img_path`` and either
    ``seg_map_path`` + ``segments`` or ``height`` + ``width`` +
    ``instances`` (+ ``shuffle_instances``, ``overlap_thr``,
    ``crowd_as_ignore``).

    Added keys: ``gt_seg_map`` (int32, H x W), ``seg_fields``
    (+ ``'gt_seg_map'``).

    Args:
        backend_args (dict, optional): mmengine file backend arguments for
            reading the panoptic PNG. Default: None.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args.copy() if backend_args else None

    def _load_panoptic(self, results: dict) -> np.ndarray:
        path = results['seg_map_path']
        try:
            png_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f'panoptic PNG not found: {path}') from error
        rgb = mmcv.imfrombytes(
            png_bytes, flag='color', channel_order='rgb', backend='cv2')
        if rgb is None:
            raise ValueError(f'cannot decode the panoptic PNG {path}')
        segment_list = [int(seg['id']) for seg in results['segments']]
        return panoptic_to_id_map(rgb_to_id(rgb), segment_list)

    @cache_randomness
    def _paint_order(self, num_instances: int, shuffle: bool) -> np.ndarray:
        if shuffle:
            return np.random.permutation(num_instances)
        return np.arange(num_instances)

    def _load_instances(self, results: dict) -> np.ndarray:
        height, width = int(results['height']), int(results['width'])
        instances = results['instances']
        crowd_as_ignore = results.get('crowd_as_ignore', True)
        order = self._paint_order(
            len(instances), results.get('shuffle_instances', True))

        def rasterise(instance: dict) -> np.ndarray:
            try:
                return segmentation_to_mask(instance['segmentation'], height,
                                            width)
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(
                    f'bad segmentation in annotation {instance.get("id")} of '
                    f'{results["img_path"]}: {error}') from error

        def is_crowd(instance: dict) -> bool:
            return bool(instance.get('iscrowd', 0))

        objects = (
            rasterise(instances[i]) for i in order
            if not (crowd_as_ignore and is_crowd(instances[i])))
        crowds = (
            rasterise(instance) for instance in instances
            if crowd_as_ignore and is_crowd(instance))
        return paint_instances(
            objects,
            height,
            width,
            overlap_thr=results.get('overlap_thr', 0.5),
            ignore_masks=crowds)

    def transform(self, results: dict) -> dict:
        """Add ``gt_seg_map`` to ``results``.

        Args:
            results (dict): Data info of one sample (see class docstring).

        Returns:
            dict: ``results`` with ``gt_seg_map`` and ``seg_fields``.
        """
        source = results.get('segment_source')
        if source == SOURCE_PANOPTIC:
            id_map = self._load_panoptic(results)
        elif source == SOURCE_INSTANCES:
            id_map = self._load_instances(results)
        else:
            raise ValueError(
                f'LoadSegmentIdMap: unknown segment_source {source!r} for '
                f'{results.get("img_path")}; expected {SOURCE_PANOPTIC!r} or '
                f'{SOURCE_INSTANCES!r} (use a dataset from '
                'interformer.datasets)')
        if 'img' in results and results['img'].shape[:2] != id_map.shape:
            raise ValueError(
                f'segment map {id_map.shape} and image '
                f'{results["img"].shape[:2]} sizes differ for '
                f'{results.get("img_path")}')
        results['gt_seg_map'] = id_map
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'
