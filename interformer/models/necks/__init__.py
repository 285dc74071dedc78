"""models/necks: the per-click I-MSA neck."""
from .imsa import IMSA

__all__ = ['IMSA']
