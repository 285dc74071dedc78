"""Native CPU kernels as PyTorch custom ops (``torch.ops.interformer.*``).

Each kernel is plain C in ``csrc/``, built at first use with the system C
compiler and cached (:mod:`.library`), and exposed as a custom op with a
fake implementation (``torch.compile``, FakeTensor and meta tensors see
it) and, where it does arithmetic, a FLOP formula (torch's
``FlopCounterMode`` and the profiler count it). Each op declares once what
its kernel takes (:mod:`.dispatch`); the public functions below pick the
route per call (the C kernel or the PyTorch reference) and
:func:`explain` says why a route was not taken::

    >>> from interformer import ops
    >>> ops.explain('attention_bf16', q, k, v, 250, 0.17)  # on a Zen 3
    'pytorch: no AVX512-BF16 on this CPU (AMD EPYC 7B13)'

``INTERFORMER_NATIVE=0`` turns the kernels off; without a compiler, or if
the build fails (one warning), every op takes its PyTorch route.
"""
from .attention import NATIVE_OPS as ATTENTION_OPS
from .attention import attention, attention_reference
from .dispatch import Support, check, declared, explain, use_native, why_not
from .flops import register_onednn_formulas
from .library import native_enabled
from .linear import (
    linear_bf16,
    linear_reference,
    pack_linear_weight,
    unpack_linear_weight,
)
from .pyramid_tokens import (
    MAX_CHANNELS,
    pyramid_tokens,
    pyramid_tokens_args,
    pyramid_tokens_reference,
)
from .resize import resize, resize_reference

register_onednn_formulas()

__all__ = [
    'ATTENTION_OPS', 'attention', 'attention_reference',
    'linear_bf16', 'linear_reference',
    'pack_linear_weight', 'unpack_linear_weight', 'pyramid_tokens',
    'pyramid_tokens_args', 'pyramid_tokens_reference', 'resize',
    'resize_reference', 'MAX_CHANNELS', 'Support', 'check', 'declared',
    'explain', 'use_native', 'why_not', 'native_enabled'
]
