"""models/losses."""

__all__ = []
