"""One dispatcher for the native kernels of :mod:`interformer.ops`.

Each op declares once what its C kernel takes (:class:`Support`: dtypes,
CPU features, shape / layout limits) and registers it with
:func:`declare`. From that one declaration:

* :func:`why_not` says why the native route is not taken for a call
  (``None`` when it is), :func:`explain` says the same in words and
  :func:`use_native` is what callers branch on (the reason of every
  declined route is logged once at debug level);
* :func:`check` raises a clear ``ValueError`` for a call the kernel does
  not take; every custom op runs it before any C code, so a wrong shape or
  dtype can never reach the kernel.
"""
import logging
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Set, Tuple

import torch

from . import library

__all__ = [
    'Support', 'declare', 'why_not', 'explain', 'use_native', 'check',
    'declared', 'FEATURE_NAMES'
]

logger = logging.getLogger(__name__)

#: Readable names of the CPU features an op may need.
FEATURE_NAMES = {
    'amx_bf16': 'AMX-BF16',
    'avx512_bf16': 'AVX512-BF16',
    'avx512f': 'AVX-512',
}


@dataclass(frozen=True)
class Support:
    """What an op's C kernel takes.

    Attributes:
        symbol: the exported C function (declared in
            ``csrc/interformer_ops.h``).
        dtypes: dtypes of the op's main tensor (its first argument).
        cpu_features: CPU features the kernel needs (keys of
            :data:`FEATURE_NAMES`); both the CPU and the compiled library
            must have them.
        limits: ``limits(*args, **kwargs)`` -> None, or a reason the kernel
            does not take these arguments (shapes, strides, layout, the
            other tensors' dtypes); must not touch tensor data.
        worthwhile: ``worthwhile(*args, **kwargs)`` -> None, or why the
            PyTorch route is faster for a call the kernel does take (e.g.
            too little work to pay the custom op's fixed cost); the
            dispatcher then picks PyTorch, a direct call still runs.
    """
    symbol: str
    dtypes: Tuple[torch.dtype, ...]
    cpu_features: Tuple[str, ...] = ()
    limits: Optional[Callable[..., Optional[str]]] = None
    worthwhile: Optional[Callable[..., Optional[str]]] = None


_DECLARED: Dict[str, Support] = {}
_LOGGED: Set[Tuple[str, str]] = set()


def declare(name: str, support: Support) -> Support:
    """Register what op ``name`` (``interformer::<name>``) supports."""
    for feature in support.cpu_features:
        if feature not in FEATURE_NAMES:
            raise ValueError(f'unknown CPU feature {feature!r}')
    _DECLARED[name] = support
    return support


def declared() -> Dict[str, Support]:
    """Op name -> its declaration."""
    return dict(_DECLARED)


def _support(name: str) -> Support:
    try:
        return _DECLARED[name]
    except KeyError:
        raise KeyError(f'interformer.ops: no op named {name!r} (declared: '
                       f'{", ".join(sorted(_DECLARED))})') from None


def _platform_reason(support: Support) -> Optional[str]:
    """Why the kernel cannot run in this process at all."""
    reason = library.unavailable_reason()
    if reason is not None:
        return reason
    compiled = library.load().features
    flags = library.cpu_flags()
    for feature in support.cpu_features:
        if feature not in flags:
            return (f'no {FEATURE_NAMES[feature]} on this CPU '
                    f'({library.cpu_model()})')
        if feature not in compiled:
            return (f'the library was built without '
                    f'{FEATURE_NAMES[feature]} (compiler)')
    return None


def _call_reason(support: Support, args: Sequence,
                 kwargs: dict) -> Optional[str]:
    """Why the kernel does not take these arguments."""
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor):
        return f'expected a tensor as first argument, got {type(x).__name__}'
    if x.device.type != 'cpu':
        return f'tensor on {x.device}, the kernel runs on the CPU'
    if x.dtype not in support.dtypes:
        names = ', '.join(str(d).replace('torch.', '') for d in support.dtypes)
        return f'dtype {str(x.dtype).replace("torch.", "")} (takes {names})'
    if support.limits is not None:
        return support.limits(*args, **kwargs)
    return None


def why_not(name: str, *args, **kwargs) -> Optional[str]:
    """Why the native route of op ``name`` is not taken for these
    arguments, or None when it is."""
    support = _support(name)
    reason = _platform_reason(support) or _call_reason(
        support, args, kwargs)
    if reason is None and support.worthwhile is not None:
        reason = support.worthwhile(*args, **kwargs)
    return reason


def explain(name: str, *args, **kwargs) -> str:
    """``'native'`` or ``'pytorch: <reason>'`` for a call of op ``name``.

    Example:
        >>> interformer.ops.explain('attention_bf16', q, k, v, 250, 0.17)
        'pytorch: no AVX512-BF16 on this CPU (AMD EPYC 7B13)'
    """
    reason = why_not(name, *args, **kwargs)
    return 'native' if reason is None else f'pytorch: {reason}'


def use_native(name: str, *args, **kwargs) -> bool:
    """True when the C kernel of op ``name`` takes this call; a declined
    call's reason is logged once (per op and reason) at debug level."""
    reason = why_not(name, *args, **kwargs)
    if reason is None:
        return True
    if (name, reason) not in _LOGGED:
        _LOGGED.add((name, reason))
        logger.debug('interformer::%s runs on PyTorch: %s', name, reason)
    return False


def check(name: str, *args, **kwargs) -> Callable:
    """The C function of op ``name`` for this call.

    Raises:
        ValueError: the kernel does not take these arguments (dtype, shape,
            layout); nothing has reached C code.
        RuntimeError: the kernel cannot run in this process (disabled, no
            compiler, CPU feature missing).
    """
    support = _support(name)
    reason = _call_reason(support, args, kwargs)
    if reason is not None:
        raise ValueError(f'interformer::{name}: {reason}')
    reason = _platform_reason(support)
    if reason is not None:
        raise RuntimeError(f'interformer::{name}: {reason}')
    return library.load().functions[support.symbol]
