"""models/segmentors."""

__all__ = []
