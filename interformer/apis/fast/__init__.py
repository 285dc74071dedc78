"""The fast CPU inference path of :class:`~interformer.apis.
InterFormerPredictor` (``path='fast'``, the default).

A fused copy of the segmentor, built from its weights when an image is set
(and rebuilt if the weights change):

* :class:`FastMAEEncoder` (:mod:`.encoder`): the ViT and SimpleFPN with every
  Linear / conv a oneDNN call (bias, GELU, layer scale fused), attention in
  query blocks with float32 scores, the relative bias from the backbone's
  bounded per-grid cache or streamed from its table for large images;
* :class:`FastClickDecoder` (:mod:`.decoder`): the I-MSA neck
  (:mod:`.neck`) and the UPerHead (:mod:`.head`, BatchNorm folded) on
  channels-last maps; the keys/values of the cross-attention blocks are
  computed once per image (:meth:`FastClickDecoder.prepare`), the pooled
  keys/values of the self-attention blocks take one grouped conv for their
  four levels (:mod:`.pooled_kv`), attention is PyTorch's fused
  ``scaled_dot_product_attention`` (bf16: key count padded to 16, masked),
  the click embedding is one table lookup at stride 4, PatchMerging is one
  strided conv;
* :mod:`.ops`: the fused primitives (per-click layers keep their weights
  pre-packed by oneDNN per input shape; their FLOP formulas are registered
  with torch's counter by :mod:`interformer.ops`).

In float32 the results equal the reference path (the model's own modules)
to 1e-4 on the logits; ``precision='bf16'`` runs the same graph in
bfloat16 with float32 attention scores, softmax, norm statistics and
logits. :func:`build_fast_path` returns ``None`` for any part a model does
not match (other backbones, necks or heads, overridden methods), and the
predictor then runs the model's own modules.
"""
from .build import build_fast_path
from .decoder import WORKING_DTYPES, DecoderCache, FastClickDecoder
from .encoder import FastMAEEncoder
from .head import FastUPerHead
from .neck import FastIMSA, FastPoolingBlock, embed_reference_label
from .ops import onednn_available

__all__ = [
    'build_fast_path', 'FastMAEEncoder', 'FastClickDecoder', 'DecoderCache',
    'WORKING_DTYPES', 'FastIMSA', 'FastPoolingBlock', 'FastUPerHead',
    'embed_reference_label', 'onednn_available'
]
