"""Decode heads: mmseg's UPerHead with a fused inference route."""
from .uper_head import DeployableUPerHead

__all__ = ['DeployableUPerHead']
