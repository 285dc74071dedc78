"""Registered model components: the heavy once-per-image path (backbones) and
the light per-click path (necks, heads, losses, segmentors)."""
from . import (  # noqa: F401
    backbones,
    decode_heads,
    losses,
    necks,
    segmentors,
)

__all__ = ['backbones', 'decode_heads', 'losses', 'necks', 'segmentors']
