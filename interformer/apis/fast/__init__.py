"""The fast inference path: fused oneDNN layers and per-image caching."""
from .build import build_fast_path
from .decoder import WORKING_DTYPES, DecoderCache, FastClickDecoder
from .encoder import FastMAEEncoder
from .head import FastUPerHead
from .neck import FastIMSA, FastPoolingBlock, embed_reference_label
from .ops import FLOP_FORMULAS, onednn_available

__all__ = [
    'build_fast_path', 'FastMAEEncoder', 'FastClickDecoder', 'DecoderCache',
    'WORKING_DTYPES', 'FastIMSA', 'FastPoolingBlock', 'FastUPerHead',
    'embed_reference_label', 'FLOP_FORMULAS', 'onednn_available'
]
