"""The per-click decoder of the fast path: cached image side, fused layers.

:class:`FastClickDecoder` copies the I-MSA neck and the UPerHead of a
:class:`~interformer.models.segmentors.ClickSegmentor` into fused oneDNN
form (see :mod:`.neck`, :mod:`.head`). Per image, :meth:`prepare` converts
the backbone pyramid once and computes the keys/values of every
cross-attention block; per click, :meth:`decode` runs only what depends on
the reference label. In float32 the logits equal the segmentor's own
``decode_clicks`` up to summation order (tested to 1e-4).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .head import FastUPerHead
from .neck import FastIMSA
from .pooled_kv import PooledKeyValue

__all__ = ['FastClickDecoder', 'DecoderCache', 'WORKING_DTYPES']

WORKING_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}


@dataclass
class DecoderCache:
    """What the decoder keeps per image.

    Attributes:
        feats: the 4 pyramid levels, channels-last, working dtype.
        key_values: K/V of each stage's cross-attention block.
        input_shape: (H, W) of the model input (the padded canvas).
    """
    feats: List[Tensor]
    key_values: List[PooledKeyValue]
    input_shape: Tuple[int, int]


class FastClickDecoder:
    """Fused neck + head of a ClickSegmentor for batch-1 CPU inference.

    Args:
        segmentor: a ``ClickSegmentor`` with an ``IMSA`` neck and an mmseg
            ``UPerHead`` (eval mode, weights loaded).
        precision: ``'fp32'`` or ``'bf16'``.

    Raises:
        NotImplementedError: the model has parts the fast path does not
            cover (the caller then uses the model's own forward).
    """

    def __init__(self,
                 segmentor: torch.nn.Module,
                 precision: str = 'fp32') -> None:
        if precision not in WORKING_DTYPES:
            raise ValueError(f'precision must be one of '
                             f'{tuple(WORKING_DTYPES)}, got {precision!r}')
        for name in ('neck', 'decode_head', 'decode_clicks'):
            if not hasattr(segmentor, name):
                raise NotImplementedError(f'fast path: the model has no '
                                          f'{name}')
        self.dtype = WORKING_DTYPES[precision]
        self.segmentor = segmentor
        with torch.no_grad():
            self.neck = FastIMSA(segmentor.neck, self.dtype)
            self.head = FastUPerHead(segmentor.decode_head, self.dtype)
        self._zoom = hasattr(segmentor, 'compute_roi')

    @torch.inference_mode()
    def prepare(self, image_feats: Sequence[Tensor],
                input_shape: Sequence[int]) -> DecoderCache:
        """Per-image work: convert the pyramid, compute the image K/V."""
        feats = self.neck.prepare_features(image_feats)
        return DecoderCache(
            feats=feats,
            key_values=self.neck.image_key_values(feats),
            input_shape=(int(input_shape[0]), int(input_shape[1])))

    def zoom_roi(self, cache: DecoderCache, ref_label: Tensor,
                 prev_mask: Optional[Tensor],
                 step: Optional[int]) -> Optional[Tensor]:
        """The zoom-in ROI of a ``ClickSegmentorZoomIn`` (None otherwise)."""
        if not self._zoom or prev_mask is None:
            return None
        start = self.segmentor.zoom_cfg['zoom_in_start_step']
        if step is not None and step < start:
            return None
        # compute_roi only reads the shapes of the pyramid
        return self.segmentor.compute_roi(cache.feats, ref_label[:, None],
                                          prev_mask[:, None])

    @torch.inference_mode()
    def decode(self,
               cache: DecoderCache,
               ref_label: Tensor,
               prev_mask: Optional[Tensor] = None,
               step: Optional[int] = None) -> Tensor:
        """Logits for one reference label.

        Args:
            cache: output of :meth:`prepare` for the current image.
            ref_label: (1, H, W) integer codes 0..4 at input resolution.
            prev_mask: (1, H, W) bool previous prediction (zoom-in only).
            step: 0-based click index (zoom-in only).

        Returns:
            Tensor: (1, 2, H/4, W/4) float32 logits.
        """
        if ref_label.dim() != 3 or ref_label.shape[0] != 1 or tuple(
                ref_label.shape[-2:]) != cache.input_shape:
            raise ValueError(f'fast decoder: ref_label must be (1, '
                             f'{cache.input_shape[0]}, '
                             f'{cache.input_shape[1]}), got '
                             f'{tuple(ref_label.shape)}')
        roi = self.zoom_roi(cache, ref_label, prev_mask, step)
        outs = self.neck(cache.feats, cache.key_values, ref_label, roi)
        return self.head(outs).float().contiguous()
