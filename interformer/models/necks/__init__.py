"""models/necks."""

__all__ = []
