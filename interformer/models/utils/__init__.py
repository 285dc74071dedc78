"""Shared pieces of the model modules: the in-place deploy mixin and the
fused inference primitives it uses."""
from .deployable import (
    DEPLOY_DTYPES,
    Deployable,
    DeployRefused,
    deploy_suspended,
)

__all__ = ['Deployable', 'DeployRefused', 'deploy_suspended', 'DEPLOY_DTYPES']
