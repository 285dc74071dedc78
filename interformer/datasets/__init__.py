"""Registered datasets and transforms (training and click-test sets)."""
from . import transforms  # noqa: F401

__all__ = ['transforms']
