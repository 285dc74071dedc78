"""ClickSegmentorZoomIn: refine blocks only around the object (test only).

From click ``zoom_in_start_step`` on (0-based, default 1 = the 2nd click) an
ROI is derived from the previous prediction and the clicks, and the I-MSA
refine blocks run only inside it (see
:mod:`interformer.models.necks.imsa.zoom_in`). The coarse blocks still see
the whole image, so for models without refine blocks (Light) zoom-in
changes nothing. Training never uses an ROI.

ROI rule (the official one), per sample:

1. bbox of (previous prediction == 1) | (ref == definite fg) |
   (ref == definite bg); the whole input when that set is empty;
2. scale its sides by ``expand_ratio`` about the centre, ``torch.round``
   the edges, clip to the input;
3. grow sides shorter than ``min_size`` to ``min_size`` about the centre
   (kept inside the input);
4. snap the edges outward to multiples of the coarsest feature stride
   (input width // width of the last image feature, 32).

``test_cfg`` keys: ``zoom_in_start_step`` (1), ``expand_ratio`` (1.4),
``min_size`` (32).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmseg.registry import MODELS
from torch import Tensor

from interformer.interaction.geometry import Box
from interformer.interaction.reference_label import (
    REF_DEFINITE_BG,
    REF_DEFINITE_FG,
)

from .click_segmentor import ClickSegmentor

__all__ = ['ClickSegmentorZoomIn', 'zoom_in_roi', 'expand_box']

DEFAULT_ZOOM_CFG = dict(zoom_in_start_step=1, expand_ratio=1.4, min_size=32)


def _grow(low: int, high: int, size: int, limit: int) -> Tuple[int, int]:
    """Grow [low, high) to ``size`` about its centre, inside [0, limit)."""
    if high - low >= size:
        return low, high
    size = min(size, limit)
    low = int(torch.round(torch.tensor((low + high - size) / 2.)))
    low = min(max(low, 0), limit - size)
    return low, low + size


def expand_box(box: Box, height: int, width: int, expand_ratio: float,
               min_size: int, stride: int) -> Box:
    """Steps 2-4 of the ROI rule for one :class:`~interformer.interaction.
    geometry.Box` ((y0, x0, y1, x1), ends exclusive) in a height x width
    input."""
    cy, cx = (box.y0 + box.y1) / 2., (box.x0 + box.x1) / 2.
    half_h = box.height * expand_ratio / 2.
    half_w = box.width * expand_ratio / 2.
    edges = torch.round(
        torch.tensor([cy - half_h, cx - half_w, cy + half_h, cx + half_w],
                     dtype=torch.float64)).long().tolist()
    box = Box(*edges).clip(height, width)
    y0, y1 = _grow(box.y0, box.y1, min_size, height)
    x0, x1 = _grow(box.x0, box.x1, min_size, width)
    return Box(y0, x0, y1, x1).snap_outward(stride).clip(height, width)


def zoom_in_roi(prev_mask: Tensor,
                ref_label: Tensor,
                stride: int,
                expand_ratio: float = 1.4,
                min_size: int = 32) -> Tensor:
    """ROIs of a batch from the previous prediction and the clicks.

    Args:
        prev_mask: (B, 1, H, W) previous foreground prediction.
        ref_label: (B, 1, H, W) current reference label (with the new
            click's disk).
        stride: coarsest feature stride; edges snap to its multiples.
        expand_ratio: side scaling about the centre.
        min_size: smallest side in pixels.

    Returns:
        Tensor: (B, 4) int64 boxes in the model's roi layout
        (:meth:`Box.to_xyxy <interformer.interaction.geometry.Box.to_xyxy>`:
        x0, y0, x1, y1, ends exclusive), in input pixels.
    """
    if prev_mask.shape[-2:] != ref_label.shape[-2:] or \
            prev_mask.shape[0] != ref_label.shape[0]:
        raise ValueError(f'zoom_in_roi: prev_mask {tuple(prev_mask.shape)} '
                         f'and ref_label {tuple(ref_label.shape)} differ')
    if expand_ratio <= 0 or min_size < 1 or stride < 1:
        raise ValueError(f'zoom_in_roi: need expand_ratio > 0, min_size >= 1'
                         f' and stride >= 1, got {expand_ratio}, {min_size},'
                         f' {stride}')
    height, width = ref_label.shape[-2:]
    mask = prev_mask.bool() | (ref_label == REF_DEFINITE_FG) | (
        ref_label == REF_DEFINITE_BG)
    mask = mask.reshape(mask.shape[0], -1, height, width).any(dim=1)
    rois = []
    for sample in mask:
        box = Box.from_mask(sample)
        if box is None:
            box = Box.from_shape(height, width)
        else:
            box = expand_box(box, height, width, expand_ratio, min_size,
                             stride)
        rois.append(box.to_xyxy())
    return torch.tensor(rois, dtype=torch.int64)


@MODELS.register_module()
class ClickSegmentorZoomIn(ClickSegmentor):
    """:class:`ClickSegmentor` whose refine blocks zoom in on the object.

    ``decode_clicks`` computes the ROI itself from ``prev_mask`` (pass
    ``None`` for the first click). Pass ``step`` (0-based click index) to
    honour ``zoom_in_start_step`` > 1; without it every call that has a
    ``prev_mask`` zooms in.
    """

    @property
    def zoom_cfg(self) -> dict:
        cfg = dict(DEFAULT_ZOOM_CFG)
        test_cfg = self.test_cfg or {}
        for key in cfg:
            if key in test_cfg:
                cfg[key] = test_cfg[key]
        return cfg

    def compute_roi(self, image_feats: Sequence[Tensor], ref_label: Tensor,
                    prev_mask: Tensor) -> Tensor:
        """(B, 4) ROIs; the snapping stride is input width // width of the
        coarsest image feature."""
        if ref_label.dim() == 3:
            ref_label = ref_label[:, None]
        if prev_mask.dim() == 3:
            prev_mask = prev_mask[:, None]
        cfg = self.zoom_cfg
        stride = ref_label.shape[-1] // image_feats[-1].shape[-1]
        return zoom_in_roi(
            prev_mask,
            ref_label,
            stride,
            expand_ratio=cfg['expand_ratio'],
            min_size=cfg['min_size'])

    def decode_clicks(self,
                      image_feats: Sequence[Tensor],
                      ref_label: Tensor,
                      prev_mask: Optional[Tensor] = None,
                      roi: Optional[Tensor] = None,
                      step: Optional[int] = None,
                      key_values: Optional[Sequence] = None) -> Tensor:
        """As :meth:`ClickSegmentor.decode_clicks`, with the ROI derived
        from ``prev_mask`` when ``roi`` is not given.

        Args:
            step: 0-based click index; below ``zoom_in_start_step`` no ROI
                is used. ``None`` zooms whenever ``prev_mask`` is given.
        """
        if roi is None and prev_mask is not None and (
                step is None or step >= self.zoom_cfg['zoom_in_start_step']):
            roi = self.compute_roi(image_feats, ref_label, prev_mask)
        return super().decode_clicks(
            image_feats, ref_label, roi=roi, key_values=key_values)
