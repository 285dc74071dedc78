"""Geometric transforms that mmseg 1.x lacks.

* :class:`RandomRescale`: scale by a random factor of the *original* size
  (mmseg 0.x ``Resize(img_scale=None, ratio_range=...)``); mmcv's
  ``RandomResize`` always needs a target ``scale``.
* :class:`PadToMinSize`: pad bottom/right up to *at least* a size; mmcv's
  ``Pad(size=...)`` fails on images that are already larger.
"""
from typing import Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.datasets.transforms import Resize
from mmseg.registry import TRANSFORMS

__all__ = ['RandomRescale', 'PadToMinSize']


@TRANSFORMS.register_module()
class RandomRescale(BaseTransform):
    """Rescale image and segmentation maps by a random factor, keep ratio.

    The factor is drawn uniformly from ``ratio_range`` (numpy global RNG)
    and applied to the current image size; images use bilinear and
    segmentation maps nearest interpolation (mmseg ``Resize``).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``, the
    ``seg_fields`` maps. Added keys: ``scale``, ``scale_factor``,
    ``keep_ratio``.

    Args:
        ratio_range (Sequence[float]): ``(min, max)`` scale factor.
            Default: (0.5, 2.0).
        interpolation (str): Image interpolation. Default: 'bilinear'.
    """

    def __init__(self,
                 ratio_range: Sequence[float] = (0.5, 2.0),
                 interpolation: str = 'bilinear') -> None:
        if len(ratio_range) != 2 or not 0 < ratio_range[0] <= ratio_range[1]:
            raise ValueError('RandomRescale: ratio_range must be (min, max) '
                             f'with 0 < min <= max, got {ratio_range}')
        self.ratio_range = tuple(float(r) for r in ratio_range)
        self.resize = Resize(
            scale_factor=1.0, keep_ratio=True, interpolation=interpolation)

    @cache_randomness
    def _random_ratio(self) -> float:
        low, high = self.ratio_range
        return float(np.random.uniform(low, high))

    def transform(self, results: dict) -> dict:
        """Rescale ``results`` by a random factor.

        Args:
            results (dict): Result dict with ``img`` (H x W x C).

        Returns:
            dict: The rescaled results.
        """
        ratio = self._random_ratio()
        self.resize.scale_factor = (ratio, ratio)
        results.pop('scale', None)
        return self.resize(results)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(ratio_range={self.ratio_range})'


@TRANSFORMS.register_module()
class PadToMinSize(BaseTransform):
    """Pad bottom/right so that the image is at least ``size``.

    Sides that are already long enough are left unchanged, so the output is
    ``(max(H, h), max(W, w))``.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``, the
    ``seg_fields`` maps. Added keys: ``pad_shape``.

    Args:
        size (Tuple[int, int]): Minimum ``(h, w)``. Default: (512, 512).
        pad_val (float): Image fill value (before normalisation).
            Default: 0.
        seg_pad_val (int): Segmentation-map fill value. Default: 0 (no
            segment, i.e. background for the object sampler).
    """

    def __init__(self,
                 size: Tuple[int, int] = (512, 512),
                 pad_val: float = 0,
                 seg_pad_val: int = 0) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise ValueError('PadToMinSize: size must be a positive (h, w), '
                             f'got {size}')
        self.size = (int(size[0]), int(size[1]))
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def transform(self, results: dict) -> dict:
        """Pad ``results['img']`` and its segmentation maps.

        Args:
            results (dict): Result dict with ``img`` (H x W x C).

        Returns:
            dict: The padded results.
        """
        img = results['img']
        height, width = img.shape[:2]
        shape = (max(height, self.size[0]), max(width, self.size[1]))
        if shape != (height, width):
            results['img'] = mmcv.impad(
                img, shape=shape, pad_val=self.pad_val)
            for key in results.get('seg_fields', []):
                if results.get(key) is not None:
                    results[key] = mmcv.impad(
                        results[key], shape=shape, pad_val=self.seg_pad_val)
        results['img_shape'] = shape
        results['pad_shape'] = shape
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val})')
