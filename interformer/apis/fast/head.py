"""mmseg's UPerHead on the fast path: BatchNorm folded, fused oneDNN convs.

Same computation as ``UPerHead.forward`` in eval mode (dropout off,
BatchNorm with running statistics): every ``ConvModule`` (conv -> BN ->
ReLU) becomes one oneDNN convolution with the BN folded into its weights
and the ReLU fused; maps stay channels-last.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads import UPerHead
from torch import Tensor

from ... import ops as native_ops
from .ops import ConvParams, conv

__all__ = ['FastUPerHead']


def _conv_module(module: nn.Module, dtype: torch.dtype) -> ConvParams:
    """An mmcv ``ConvModule`` (conv -> norm -> ReLU) as one fused conv."""
    order = getattr(module, 'order', None)
    if order != ('conv', 'norm', 'act'):
        raise NotImplementedError(f'fast head: ConvModule order {order}')
    norm = module.norm if module.with_norm else None
    if norm is not None and not isinstance(norm,
                                           nn.modules.batchnorm._BatchNorm):
        raise NotImplementedError(f'fast head: norm {type(norm).__name__}')
    act = 'none'
    if module.with_activation:
        if not isinstance(module.activate, nn.ReLU):
            raise NotImplementedError(
                f'fast head: activation {type(module.activate).__name__}')
        act = 'relu'
    return ConvParams.from_conv(module.conv, dtype, bn=norm, act=act)


class FastUPerHead:
    """Fused copy of an mmseg :class:`UPerHead` for inference.

    Args:
        head: the source head (its weights and BN statistics are copied).
        dtype: working dtype (float32 or bfloat16).
    """

    def __init__(self, head: nn.Module, dtype: torch.dtype) -> None:
        if type(head) is not UPerHead:
            raise NotImplementedError(f'fast path: unsupported decode head '
                                      f'{type(head).__name__}')
        if head.input_transform != 'multiple_select':
            raise NotImplementedError('fast head: input_transform '
                                      f'{head.input_transform}')
        self.dtype = dtype
        self.in_index = list(head.in_index)
        self.align_corners = head.align_corners
        self.laterals = [_conv_module(m, dtype) for m in head.lateral_convs]
        self.fpn_convs = [_conv_module(m, dtype) for m in head.fpn_convs]
        self.ppm_scales = []
        self.ppm_convs = []
        for branch in head.psp_modules:
            pool, conv_module = branch[0], branch[1]
            self.ppm_scales.append(pool.output_size)
            self.ppm_convs.append(_conv_module(conv_module, dtype))
        self.bottleneck = _conv_module(head.bottleneck, dtype)
        self.fpn_bottleneck = _conv_module(head.fpn_bottleneck, dtype)
        # the classifier stays float32: bfloat16 logits would be rounded to
        # ~0.03 near |logit| = 8, right where the mask decision is made
        self.cls = ConvParams.from_conv(head.conv_seg, torch.float32)

    def _resize(self,
                x: Tensor,
                size,
                out: Optional[Tensor] = None,
                accumulate: bool = False) -> Tensor:
        """Bilinear resize of a channels-last map to ``size``.

        Written into ``out`` when given (a channels-last map or a channel
        slice of one), or added to it with ``accumulate``
        (:func:`interformer.ops.resize`: the C kernel where the dispatcher
        takes it, else a float32 ``F.interpolate`` and a conversion).
        """
        return native_ops.resize(x, size, out, accumulate,
                                 self.align_corners)

    def __call__(self, inputs: Sequence[Tensor]) -> Tensor:
        """Channels-last neck outputs -> (1, num_classes, H/4, W/4) float32
        logits."""
        inputs = [inputs[i] for i in self.in_index]
        top = inputs[-1]
        size = tuple(top.shape[-2:])
        ppm = [top] + [
            self._resize(
                conv(F.adaptive_avg_pool2d(top, scale), params), size)
            for scale, params in zip(self.ppm_scales, self.ppm_convs)
        ]
        laterals: List[Tensor] = [
            conv(inputs[i], params) for i, params in enumerate(self.laterals)
        ]
        laterals.append(
            conv(
                torch.cat(ppm,
                          dim=1).contiguous(memory_format=torch.channels_last),
                self.bottleneck))
        # top-down (the laterals end in a ReLU, so the sum cannot be fused
        # into their conv)
        for i in range(len(laterals) - 1, 0, -1):
            self._resize(laterals[i], tuple(laterals[i - 1].shape[-2:]),
                         out=laterals[i - 1], accumulate=True)
        # every level at stride 4, written straight into the channel slices
        # of the fpn_bottleneck's input (no concatenation pass)
        outs = [
            conv(laterals[i], params)
            for i, params in enumerate(self.fpn_convs)
        ] + [laterals[-1]]
        first = outs[0]
        size = tuple(first.shape[-2:])
        channels = [o.shape[1] for o in outs]
        fused = torch.empty((1, sum(channels)) + size,
                            dtype=first.dtype,
                            memory_format=torch.channels_last)
        start = 0
        for out in outs:  # the first is copied (a resize to its own size)
            self._resize(out, size, out=fused[:, start:start + out.shape[1]])
            start += out.shape[1]
        return conv(conv(fused, self.fpn_bottleneck).float(), self.cls)
