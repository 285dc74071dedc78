"""In-place inference deploy of a module (``switch_to_deploy``).

As in mmcv / RepVGG (``switch_to_deploy``) or ultralytics (``fuse``), a
:class:`Deployable` module prepares a fused inference state from its own
weights (BatchNorm folded, weights pre-packed by oneDNN, channels-last,
bfloat16 ...) and its ``forward`` then runs through that state when the
input fits (CPU, batch 1; see each module). The parameters are untouched,
so the state dict, training code and the reference route stay as they
were; :meth:`Deployable.revert_deploy` drops the state.

The fused route is skipped (the module's own ops run) while

* :func:`deploy_suspended` is active in the thread (the predictor's
  ``path='reference'`` uses it on a model another predictor deployed);
* a forward (pre-)hook is registered on one of the module's descendants,
  which the fused route does not call (hooks on the module itself fire as
  usual).

A subclass that overrides one of the methods the fused route replaces
(:attr:`Deployable.deploy_replaces`) is not deployed: one log line says
why, and its own methods run.

The fused state is derived from the weights at deploy time: after editing
weights in place (loading a checkpoint, fine-tuning) call
:func:`interformer.models.deploy.deploy_model` again.
"""
import contextlib
import logging
import threading
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn

__all__ = [
    'Deployable', 'DeployRefused', 'deploy_suspended', 'DEPLOY_DTYPES',
    'overridden_method', 'to_param_dtype'
]

logger = logging.getLogger('interformer.deploy')

#: Working dtypes of the fused routes.
DEPLOY_DTYPES = (torch.float32, torch.bfloat16)

_STATE = threading.local()


class DeployRefused(NotImplementedError):
    """A module (or its parts) has something the fused route does not
    cover; the message says what."""


@contextlib.contextmanager
def deploy_suspended() -> Iterator[None]:
    """Run every deployed module's own (reference) ops in this thread."""
    depth = getattr(_STATE, 'suspended', 0)
    _STATE.suspended = depth + 1
    try:
        yield
    finally:
        _STATE.suspended = depth


def _suspended() -> bool:
    return getattr(_STATE, 'suspended', 0) > 0


def to_param_dtype(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """``x`` in the dtype of ``module``'s parameters (floating ``x`` only).

    The own route of a module behind a deployed bf16 one gets bfloat16
    maps; its float32 layers need float32 inputs.
    """
    param = next(module.parameters(), None)
    if param is None or not x.is_floating_point() or x.dtype == param.dtype:
        return x
    return x.to(param.dtype)


def overridden_method(module: nn.Module, base: type,
                      names: Tuple[str, ...]) -> Optional[str]:
    """The first of ``names`` that ``module`` does not take from ``base``
    (a subclass override or a method patched on the instance), else None."""
    for name in names:
        if name in module.__dict__ or getattr(type(module), name,
                                              None) is not getattr(
                                                  base, name, None):
            return name
    return None


class Deployable:
    """Mixin for modules with a fused inference route.

    Subclasses implement :meth:`_build_deploy_state` (raise
    :class:`DeployRefused` for what they do not cover) and route their
    forward through ``self._deploy_state`` when :meth:`_use_deployed`.
    """

    #: Methods the fused route replaces; an override keeps the module on
    #: its own route.
    deploy_replaces: Tuple[str, ...] = ('forward', )

    _deploy_state = None
    _deploy_dtype: Optional[torch.dtype] = None
    _deploy_watch: Tuple[dict, ...] = ()

    @property
    def deployed(self) -> bool:
        """True when the fused inference state is prepared."""
        return self._deploy_state is not None

    @property
    def deploy_dtype(self) -> Optional[torch.dtype]:
        """Working dtype of the fused route (None when not deployed)."""
        return self._deploy_dtype

    def _deploy_base(self) -> type:
        """The class that defines the fused route."""
        for cls in type(self).__mro__:
            if '_build_deploy_state' in cls.__dict__:
                return cls
        raise TypeError(f'{type(self).__name__} has no fused route')

    @torch.no_grad()
    def switch_to_deploy(self, dtype: torch.dtype = torch.float32) -> None:
        """Prepare the fused inference state and route ``forward`` through
        it (again, from the current weights, if already deployed).

        Raises:
            DeployRefused: the module (a subclass override, an unsupported
                part) is not covered; it keeps its own route.
        """
        if dtype not in DEPLOY_DTYPES:
            raise ValueError(f'deploy dtype must be one of {DEPLOY_DTYPES}, '
                             f'got {dtype}')
        self.revert_deploy()
        name = overridden_method(self, self._deploy_base(),
                                 self.deploy_replaces)
        if name is not None:
            raise DeployRefused(f'{type(self).__name__} overrides {name}()')
        state = self._build_deploy_state(dtype)
        self._deploy_dtype = dtype
        # the watched modules' hook dicts (mutated in place when a hook is
        # registered): one C-level any() per call
        self._deploy_watch = tuple(
            hooks for m in self._deploy_watch_modules()
            for hooks in (m._forward_hooks, m._forward_pre_hooks))
        self._deploy_state = state

    def _deploy_watch_modules(self) -> Tuple[nn.Module, ...]:
        """The modules whose hooks keep a call off the fused route: those
        the route does not call (default: every descendant)."""
        return tuple(m for m in self.modules() if m is not self)

    def revert_deploy(self) -> None:
        """Drop the fused state: ``forward`` runs the module's own ops."""
        self._deploy_state = None
        self._deploy_dtype = None
        self._deploy_watch = ()

    def _build_deploy_state(self, dtype: torch.dtype):
        raise NotImplementedError

    def _use_deployed(self, x: torch.Tensor) -> bool:
        """Whether this call takes the fused route: deployed, eval mode, a
        batch-1 CPU input, not suspended, no hooks inside the module."""
        if self._deploy_state is None or self.training or \
                x.shape[0] != 1 or x.device.type != 'cpu' or _suspended():
            return False
        return not any(self._deploy_watch)
