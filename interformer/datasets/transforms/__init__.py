"""datasets/transforms."""

__all__ = []
