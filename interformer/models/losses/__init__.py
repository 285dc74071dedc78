"""models/losses: the Normalized Focal Loss of InterFormer."""
from .normalized_focal_loss import NormalizedFocalLoss

__all__ = ['NormalizedFocalLoss']
