"""models/backbones."""

__all__ = []
