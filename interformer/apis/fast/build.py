"""Choose the fast-path pieces a segmentor supports."""
import warnings
from typing import Optional, Tuple

import torch

from ...models.segmentors import ClickSegmentor, ClickSegmentorZoomIn
from .decoder import WORKING_DTYPES, FastClickDecoder
from .encoder import FastMAEEncoder
from .ops import onednn_available

__all__ = ['build_fast_path']

#: The segmentor methods the fast path replaces, as defined when this module
#: was imported. A subclass override or a patched method (e.g. a test that
#: counts calls) is not one of them, and then the model's own method runs.
_REPLACED = {
    name:
    {getattr(cls, name)
     for cls in (ClickSegmentor, ClickSegmentorZoomIn)}
    for name in ('extract_image_feats', 'decode_clicks', 'decode_neck')
}


def _own_method(model: torch.nn.Module, name: str) -> bool:
    """True if ``model.<name>`` is the method the fast path reproduces."""
    return getattr(type(model), name, None) in _REPLACED[name]


def build_fast_path(
    model: torch.nn.Module, precision: str, device: torch.device
) -> Tuple[Optional[FastMAEEncoder], Optional[FastClickDecoder]]:
    """The fused encoder and decoder for ``model``, where they apply.

    The fast path covers the InterFormer segmentors (``ClickSegmentor`` and
    ``ClickSegmentorZoomIn`` with an ``MAEWithSimpleFPN`` backbone, an
    ``IMSA`` neck and an mmseg ``UPerHead``) on the CPU. Any other model
    (or part) gets ``None`` and runs its own modules.

    Returns:
        tuple: (encoder or None, decoder or None).
    """
    if precision not in WORKING_DTYPES:
        raise ValueError(f'precision must be one of '
                         f'{tuple(WORKING_DTYPES)}, got {precision!r}')
    if device.type != 'cpu' or not onednn_available():
        return None, None
    if not isinstance(model, ClickSegmentor):
        return None, None
    encoder = decoder = None
    dtype = WORKING_DTYPES[precision]
    try:
        if _own_method(model, 'extract_image_feats'):
            encoder = FastMAEEncoder(model.backbone, dtype)
    except NotImplementedError as err:
        warnings.warn(f'fast encoder not used: {err}')
    try:
        if _own_method(model, 'decode_clicks') and _own_method(
                model, 'decode_neck'):
            decoder = FastClickDecoder(model, precision)
    except NotImplementedError as err:
        warnings.warn(f'fast decoder not used: {err}')
    return encoder, decoder
