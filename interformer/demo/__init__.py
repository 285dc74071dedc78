"""demo."""

__all__ = []
