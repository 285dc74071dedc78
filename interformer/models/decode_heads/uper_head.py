"""mmseg's UPerHead with a fused inference route.

:class:`DeployableUPerHead` is mmseg's ``UPerHead`` (same parameters, same
forward) plus :meth:`~interformer.models.utils.Deployable.switch_to_deploy`:
every ``ConvModule`` (conv -> BN -> ReLU) becomes one oneDNN convolution
with the BN folded into its weights and the ReLU fused, maps stay
channels-last in the working dtype and the bilinear resizes write into
their targets; the classifier stays float32. In float32 the logits equal
``UPerHead.forward`` in eval mode to 1e-4.

Configs may name it directly (``type='DeployableUPerHead'``);
:func:`interformer.models.deploy.deploy_model` also turns a plain
``UPerHead`` into it in place (the class only adds methods). Subclasses of
``UPerHead`` keep their own forward.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads import UPerHead
from mmseg.registry import MODELS
from torch import Tensor

from interformer import ops as native_ops

from ..utils.deployable import Deployable, DeployRefused, to_param_dtype
from ..utils.fused_ops import ConvParams, channels_last, conv

__all__ = ['DeployableUPerHead']


def _conv_module(module: nn.Module, dtype: torch.dtype) -> ConvParams:
    """An mmcv ``ConvModule`` (conv -> norm -> ReLU) as one fused conv."""
    order = getattr(module, 'order', None)
    if order != ('conv', 'norm', 'act'):
        raise DeployRefused(f'UPerHead: ConvModule order {order}')
    norm = module.norm if module.with_norm else None
    if norm is not None and not isinstance(norm,
                                           nn.modules.batchnorm._BatchNorm):
        raise DeployRefused(f'UPerHead: norm {type(norm).__name__}')
    act = 'none'
    if module.with_activation:
        if not isinstance(module.activate, nn.ReLU):
            raise DeployRefused(
                f'UPerHead: activation {type(module.activate).__name__}')
        act = 'relu'
    return ConvParams.from_conv(module.conv, dtype, bn=norm, act=act)


@dataclass
class _FusedHead:
    laterals: List[ConvParams]
    fpn_convs: List[ConvParams]
    ppm_scales: List[Tuple[int, int]]
    ppm_convs: List[ConvParams]
    bottleneck: ConvParams
    fpn_bottleneck: ConvParams
    cls: ConvParams  # float32


@MODELS.register_module()
class DeployableUPerHead(Deployable, UPerHead):
    """mmseg's ``UPerHead`` with a fused batch-1 CPU inference route."""

    deploy_replaces = ('forward', '_forward_feature', 'psp_forward',
                       'cls_seg', '_transform_inputs')

    def forward(self, inputs):
        """UPerHead's forward; deployed, a batch-1 CPU call is fused."""
        if self._use_deployed(inputs[self.in_index[-1]]):
            return self._forward_deployed(inputs)
        return super().forward(
            [to_param_dtype(x, self.conv_seg) for x in inputs])

    def _build_deploy_state(self, dtype: torch.dtype) -> _FusedHead:
        if self.input_transform != 'multiple_select':
            raise DeployRefused(f'UPerHead: input_transform '
                                f'{self.input_transform}')
        if self.dropout is not None and self.dropout.p > 0 and self.training:
            raise DeployRefused('UPerHead: dropout in training mode')
        ppm_scales, ppm_convs = [], []
        for branch in self.psp_modules:
            pool, conv_module = branch[0], branch[1]
            if not isinstance(pool, nn.AdaptiveAvgPool2d):
                raise DeployRefused(f'UPerHead: PPM pool {pool!r}')
            ppm_scales.append(pool.output_size)
            ppm_convs.append(_conv_module(conv_module, dtype))
        return _FusedHead(
            laterals=[_conv_module(m, dtype) for m in self.lateral_convs],
            fpn_convs=[_conv_module(m, dtype) for m in self.fpn_convs],
            ppm_scales=ppm_scales,
            ppm_convs=ppm_convs,
            bottleneck=_conv_module(self.bottleneck, dtype),
            fpn_bottleneck=_conv_module(self.fpn_bottleneck, dtype),
            # the classifier stays float32: bfloat16 logits would be
            # rounded to ~0.03 near |logit| = 8, right where the mask
            # decision is made
            cls=ConvParams.from_conv(self.conv_seg, torch.float32))

    def _fused_resize(self,
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

    def _forward_deployed(self, inputs: Sequence[Tensor]) -> Tensor:
        """Neck outputs -> (1, num_classes, H/4, W/4) float32 logits."""
        state, dtype = self._deploy_state, self._deploy_dtype
        inputs = [
            channels_last(inputs[i].to(dtype)) for i in self.in_index
        ]
        top = inputs[-1]
        size = tuple(top.shape[-2:])
        ppm = [top] + [
            self._fused_resize(
                conv(F.adaptive_avg_pool2d(top, scale), params), size)
            for scale, params in zip(state.ppm_scales, state.ppm_convs)
        ]
        laterals: List[Tensor] = [
            conv(inputs[i], params) for i, params in enumerate(state.laterals)
        ]
        laterals.append(
            conv(
                torch.cat(ppm,
                          dim=1).contiguous(memory_format=torch.channels_last),
                state.bottleneck))
        # top-down (the laterals end in a ReLU, so the sum cannot be fused
        # into their conv)
        for i in range(len(laterals) - 1, 0, -1):
            self._fused_resize(laterals[i], tuple(laterals[i - 1].shape[-2:]),
                         out=laterals[i - 1], accumulate=True)
        # every level at stride 4, written straight into the channel slices
        # of the fpn_bottleneck's input (no concatenation pass)
        outs = [
            conv(laterals[i], params)
            for i, params in enumerate(state.fpn_convs)
        ] + [laterals[-1]]
        first = outs[0]
        size = tuple(first.shape[-2:])
        channels = [o.shape[1] for o in outs]
        fused = torch.empty((1, sum(channels)) + size,
                            dtype=first.dtype,
                            memory_format=torch.channels_last)
        start = 0
        for out in outs:  # the first is copied (a resize to its own size)
            self._fused_resize(
                out, size, out=fused[:, start:start + out.shape[1]])
            start += out.shape[1]
        return conv(conv(fused, state.fpn_bottleneck).float(), state.cls)
