"""Registered model components: the heavy once-per-image path (backbones) and
the light per-click path (necks, heads, losses, segmentors)."""
from . import backbones, losses, necks, segmentors  # noqa: F401

__all__ = ['backbones', 'losses', 'necks', 'segmentors']
