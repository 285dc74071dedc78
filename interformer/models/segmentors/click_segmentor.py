"""ClickSegmentor: encode the image once, decode every click.

Call graph (interactive use, e.g. the click test or the predictor)::

    inputs (B,3,H,W) --extract_image_feats--> [F0..F3]      once per image
    [F0..F3] + ref_label (B,1,H,W) --decode_clicks--> (B,2,H/4,W/4)
                                                          once per click
    (B,2,H/4,W/4) --upsample_logits--> (B,2,H,W) --argmax--> mask

Training (:meth:`ClickSegmentor.loss`) first plays the robot user against
the model without gradients to build the reference label
(:func:`~interformer.interaction.click_simulation.
simulate_reference_labels`), then runs backbone + neck + heads with
gradients on that label. mmseg's ``predict`` / ``_forward`` keep working and
use an all-``unknown`` reference label (no clicks).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from interformer.interaction.reference_label import REF_UNKNOWN

from ..utils.deployable import to_param_dtype

__all__ = ['ClickSegmentor']


@MODELS.register_module()
class ClickSegmentor(EncoderDecoder):
    """Interactive segmentor: MAE+SimpleFPN backbone, I-MSA neck, UPerHead.

    The constructor arguments are those of mmseg's ``EncoderDecoder``; the
    ``neck`` must be an :class:`~interformer.models.necks.IMSA` (it takes
    the reference label) and is required.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.with_neck:
            raise ValueError('ClickSegmentor needs a neck (IMSA) that fuses '
                             'the clicks; got neck=None')

    # ----------------------------------------------------- interactive API
    def extract_image_feats(self, inputs: Tensor) -> List[Tensor]:
        """Backbone only (the heavy part, run once per image).

        Args:
            inputs: (B, 3, H, W) normalised RGB, H and W multiples of 32.

        Returns:
            list[Tensor]: (B, 32, H/4, W/4), (B, 64, H/8, W/8),
            (B, 128, H/16, W/16), (B, 256, H/32, W/32).
        """
        return list(self.backbone(inputs))

    def image_key_values(self, image_feats: Sequence[Tensor]) -> list:
        """Keys/values of the neck's cross-attention blocks; they depend on
        the image only, so they can be computed once per image and passed
        to :meth:`decode_clicks` as ``key_values``."""
        return self.neck.image_key_values(image_feats)

    def decode_neck(self,
                    image_feats: Sequence[Tensor],
                    ref_label: Tensor,
                    roi: Optional[Tensor] = None,
                    key_values: Optional[Sequence] = None
                    ) -> Tuple[Tensor, ...]:
        """I-MSA outputs for a reference label; see :meth:`decode_clicks`."""
        if ref_label.dim() == 3:
            ref_label = ref_label[:, None]
        return self.neck(image_feats, ref_label, roi=roi,
                         key_values=key_values)

    def decode_clicks(self,
                      image_feats: Sequence[Tensor],
                      ref_label: Tensor,
                      prev_mask: Optional[Tensor] = None,
                      roi: Optional[Tensor] = None,
                      key_values: Optional[Sequence] = None) -> Tensor:
        """Neck + decode head for the current clicks (run per click).

        Args:
            image_feats: output of :meth:`extract_image_feats`.
            ref_label: (B, 1, H, W) reference-label codes 0..4 (uint8 or
                long) at input resolution.
            prev_mask: (B, 1, H, W) previous prediction; unused here (the
                zoom-in variant derives its ROI from it).
            roi: optional (B, 4) boxes (left, up, right, bottom) in input
                pixels; refine blocks then run only inside them.
            key_values: optional output of :meth:`image_key_values` for
                the same ``image_feats`` (skips that per-image work).

        Returns:
            Tensor: (B, 2, H/4, W/4) logits (background, foreground).
        """
        outs = self.decode_neck(image_feats, ref_label, roi, key_values)
        if not getattr(self.decode_head, 'deployed', False):
            # a head without a fused route behind a deployed bf16 neck
            outs = [to_param_dtype(x, self.decode_head) for x in outs]
        return self.decode_head(list(outs))

    def upsample_logits(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Bilinear (align_corners=False) resize of (B, 2, h, w) logits to
        (B, 2, *size)."""
        return F.interpolate(
            logits,
            size=tuple(int(s) for s in size),
            mode='bilinear',
            align_corners=self.align_corners)

    # ------------------------------------------------- mmseg integration
    def unknown_reference_label(self, inputs: Tensor) -> Tensor:
        """All-``unknown`` (B, 1, H, W) uint8 label for a batch."""
        batch, _, height, width = inputs.shape
        return torch.full((batch, 1, height, width),
                          REF_UNKNOWN,
                          dtype=torch.uint8,
                          device=inputs.device)

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """mmseg hook: neck outputs with no clicks (all ``unknown``)."""
        feats = self.extract_image_feats(inputs)
        return list(
            self.decode_neck(feats, self.unknown_reference_label(inputs)))

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Training losses on a simulated reference label.

        Args:
            inputs: (B, 3, H, W) normalised RGB.
            data_samples: ``SegDataSample`` s whose ``gt_sem_seg`` holds
                1 = object, 0 = background, 255 = ignore.

        Returns:
            dict[str, Tensor]: ``decode.loss_*``, ``aux.loss_*`` and the
            heads' accuracies.
        """
        # Imported lazily: the simulation imports the interaction package,
        # which must not be needed just to build the model.
        from interformer.interaction.click_simulation import (
            simulate_reference_labels,
        )
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples]).long()
        with torch.no_grad():
            ref_label = simulate_reference_labels(self, inputs, gt,
                                                  self.train_cfg)
        feats = self.extract_image_feats(inputs)
        neck_outs = list(self.decode_neck(feats, ref_label))
        losses = dict()
        losses.update(self._decode_head_forward_train(neck_outs,
                                                      data_samples))
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(neck_outs, data_samples))
        return losses
