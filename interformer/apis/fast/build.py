"""Choose the fast-path pieces a segmentor supports."""
import warnings
from typing import Optional, Tuple

import torch

from .decoder import WORKING_DTYPES, FastClickDecoder
from .encoder import FastMAEEncoder
from .ops import onednn_available

__all__ = ['build_fast_path']


def _own_method(model: torch.nn.Module, name: str, owners: tuple) -> bool:
    """True if ``model.<name>`` is one of the given classes' own method."""
    method = getattr(type(model), name, None)
    return any(method is getattr(owner, name, None) for owner in owners)


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
    from ...models.segmentors import ClickSegmentor, ClickSegmentorZoomIn
    if precision not in WORKING_DTYPES:
        raise ValueError(f'precision must be one of '
                         f'{tuple(WORKING_DTYPES)}, got {precision!r}')
    if device.type != 'cpu' or not onednn_available():
        return None, None
    if not isinstance(model, ClickSegmentor):
        return None, None
    owners = (ClickSegmentor, ClickSegmentorZoomIn)
    encoder = decoder = None
    dtype = WORKING_DTYPES[precision]
    try:
        if _own_method(model, 'extract_image_feats', owners):
            encoder = FastMAEEncoder(model.backbone, dtype)
    except NotImplementedError as err:
        warnings.warn(f'fast encoder not used: {err}')
    try:
        if _own_method(model, 'decode_clicks', owners) and _own_method(
                model, 'decode_neck', owners):
            decoder = FastClickDecoder(model, precision)
    except NotImplementedError as err:
        warnings.warn(f'fast decoder not used: {err}')
    return encoder, decoder
