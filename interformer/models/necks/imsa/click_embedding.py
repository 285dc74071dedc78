"""The click embedding at stride 4 without the full-resolution map.

:meth:`IMSA.embed_reference_label <interformer.models.necks.imsa.IMSA.
embed_reference_label>` looks the reference label up at input resolution
and resizes bilinearly to the stride-4 grid; for an exact 4x reduction the
deployed neck takes the same values from four taps per output pixel and
one lookup in :func:`quad_table` (bit for bit the same operations).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['quad_table', 'embed_reference_label', 'EMBED_STRIDE']

#: Scale of the stride-4 grid w.r.t. the reference label.
EMBED_STRIDE = 4


def as_tokens(x: Tensor) -> Tensor:
    """Channels-last (B, C, H, W) -> (B, H*W, C) view (no copy)."""
    batch, channels = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def as_map(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W, C) -> channels-last (B, C, H, W) view (no copy)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def quad_table(table: Tensor) -> Tensor:
    """Stride-4 click embeddings of every 2x2 tap combination.

    Row ``a + K*b + K^2*c + K^3*d`` (``K`` codes) holds
    ``((t[a] + t[b]) + (t[c] + t[d])) * 0.25``: the bilinear 4x reduction
    of taps (row 1, col 1), (1, 2), (2, 1), (2, 2) with the same operations
    in the same order, so a lookup equals the direct computation bit for
    bit.

    Args:
        table: (K, C) float32 embedding table.

    Returns:
        Tensor: (K^4, C) float32.
    """
    num_codes = table.shape[0]
    codes = torch.arange(num_codes**4)
    a, b, c, d = (codes // num_codes**i % num_codes for i in range(4))
    return ((table[a] + table[b]) + (table[c] + table[d])) * 0.25


def embed_reference_label(ref_label: Tensor,
                          table: Tensor,
                          size: Tuple[int, int],
                          quad: Optional[Tensor] = None) -> Tensor:
    """Click embedding at stride 4 without the full-resolution map.

    Equals ``F.interpolate(table[ref_label].permute(0, 3, 1, 2), size,
    'bilinear', align_corners=False)``: for an exact 4x reduction every
    output is the mean of the 2x2 input pixels at rows ``4i+1, 4i+2`` and
    columns ``4j+1, 4j+2`` (weights 0.5 each, exact in floating point), so
    only those four taps are read and their codes index one row of
    :func:`quad_table` (a single lookup). Other ratios take the general
    route on a 5-channel one-hot map.

    Args:
        ref_label: (B, H, W) integer codes.
        table: (num_codes, C) float32 embedding table.
        size: (h, w) of the output grid.
        quad: ``quad_table(table)``, precomputed (built here if None),
            possibly rounded to the working dtype.

    Returns:
        Tensor: channels-last (B, C, h, w), the dtype of ``quad`` on the
        stride-4 route, else float32.
    """
    batch, height, width = ref_label.shape
    out_h, out_w = size
    if height == EMBED_STRIDE * out_h and width == EMBED_STRIDE * out_w:
        if quad is None:
            quad = quad_table(table)
        num_codes = table.shape[0]
        index = ref_label[:, 1::4, 1::4].to(torch.int32)
        for i, (row, col) in enumerate(((1, 2), (2, 1), (2, 2)), start=1):
            index += ref_label[:, row::4, col::4].to(
                torch.int32) * num_codes**i
        emb = F.embedding(index, quad)
        return emb.permute(0, 3, 1, 2)  # (B, h, w, C) -> channels-last
    one_hot = F.one_hot(ref_label.long(), table.shape[0]).permute(0, 3, 1,
                                                                  2).float()
    weights = F.interpolate(
        one_hot, size=size, mode='bilinear', align_corners=False)
    emb = torch.einsum('bkhw,kc->bhwc', weights, table)
    return emb.permute(0, 3, 1, 2)
