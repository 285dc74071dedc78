"""Zoom-in path of I-MSA: refine blocks restricted to a region of interest.

With an ROI the refine blocks of a stage run only on the crop of the
stage's coarse output that the ROI covers (self-attention and pooling
inside the crop, pooled grids sized from the crop), and the result is
pasted into a copy of the full map. Everything is plain tensor slicing, so
no ``roi_align`` is needed; samples of a batch are cropped one by one.

ROIs come in the model's roi layout ``(x0, y0, x1, y1)`` (left, up, right,
bottom; ends exclusive; the official layout), i.e.
:meth:`interformer.interaction.geometry.Box.to_xyxy`; the box arithmetic is
that of :class:`~interformer.interaction.geometry.Box`.
"""
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from interformer.interaction.geometry import Box

__all__ = [
    'normalize_rois', 'roi_to_window', 'run_blocks', 'run_blocks_in_roi'
]

Roi = Tuple[int, int, int, int]
RoiLike = Union[Tensor, Sequence[int], Sequence[Sequence[int]]]


def normalize_rois(roi: RoiLike, batch_size: int) -> List[Roi]:
    """One (left, up, right, bottom) tuple of ints per sample.

    Args:
        roi: a (4,) / (1, 4) box used for every sample, or a (B, 4) tensor,
            array or nested sequence. Boxes are in input pixels with the
            right/bottom edges exclusive.
        batch_size: number of samples ``B``.
    """
    boxes = torch.as_tensor(roi).detach().cpu().to(torch.int64)
    if boxes.dim() == 1:
        boxes = boxes[None]
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f'roi must have shape (4,) or (B, 4) as (left, up, '
                         f'right, bottom), got {tuple(boxes.shape)}')
    if boxes.shape[0] == 1 and batch_size > 1:
        boxes = boxes.expand(batch_size, 4)
    if boxes.shape[0] != batch_size:
        raise ValueError(f'roi has {boxes.shape[0]} boxes for a batch of '
                         f'{batch_size}')
    rois = [tuple(int(v) for v in box) for box in boxes.tolist()]
    for left, up, right, bottom in rois:
        if left < 0 or up < 0 or right <= left or bottom <= up:
            raise ValueError(f'roi (left, up, right, bottom) = '
                             f'{(left, up, right, bottom)} is empty or '
                             f'negative')
    return rois


def roi_to_window(roi: Roi, stride: int, height: int, width: int) -> Roi:
    """ROI in input pixels -> window (left, up, right, bottom) on a feature
    map of size (height, width) and cumulative ``stride``.

    Edges are rounded outward (floor for left/up, ceil for right/bottom)
    and clipped to the map; for ROIs snapped to multiples of the coarsest
    stride (as the segmentor produces them) this is an exact division.
    """
    return Box.from_xyxy(roi).on_grid(stride, height, width).to_xyxy()


def run_blocks(blocks: nn.ModuleList, x: Tensor) -> Tensor:
    """Apply self-attention blocks in sequence on (B, C, H, W)."""
    for block in blocks:
        x = block(x)
    return x


def run_blocks_in_roi(blocks: nn.ModuleList, x: Tensor, roi: RoiLike,
                      stride: int) -> Tensor:
    """Run ``blocks`` on the ROI crop of every sample and paste the result.

    Args:
        blocks: self-attention :class:`PoolingBlock` s (the refine blocks).
        x: (B, C, H, W) coarse output of a stage.
        roi: see :func:`normalize_rois`, in input pixels.
        stride: cumulative stride of ``x`` w.r.t. the input.

    Returns:
        Tensor: (B, C, H, W), a copy of ``x`` with the refined crops.
    """
    if len(blocks) == 0:
        return x
    height, width = x.shape[-2:]
    out = x.clone()
    for index, roi_xyxy in enumerate(normalize_rois(roi, x.shape[0])):
        rows, cols = Box.from_xyxy(roi_xyxy).on_grid(stride, height,
                                                      width).slices
        out[index:index + 1, :, rows, cols] = run_blocks(
            blocks, x[index:index + 1, :, rows, cols])
    return out
