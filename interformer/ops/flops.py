"""FLOP formulas for the fused oneDNN ops the fast path calls, registered
with torch's FLOP counter (``torch.utils.flop_counter``), so that
``FlopCounterMode`` counts them like the aten ops they replace (a
multiply-add = 2 FLOPs) with no ``custom_mapping``. The formulas of the
native kernels are registered next to their ops.
"""
import torch
from torch.utils.flop_counter import flop_registry, register_flop_formula

__all__ = ['register_onednn_formulas']


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _conv_pointwise_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    # default overload: (X, W, B, padding, ...); binary: (X, other, W, ...)
    w_shape = args[0] if isinstance(args[2], list) else args[1]
    return 2 * _prod(out_shape) * _prod(w_shape[1:])


def _conv_transpose_flops(x_shape, w_shape, *args, out_shape=None,
                          **kwargs) -> int:
    # every input element is multiplied into C_out/groups * kh * kw outputs
    return 2 * _prod(x_shape) * _prod(w_shape[1:])


def _linear_pointwise_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(out_shape) * int(x_shape[-1])


def _sdpa_cpu_flops(q_shape, k_shape, v_shape, *args, out_shape=None,
                    **kwargs) -> int:
    # torch's own table has no entry for the CPU flash kernel
    batch_heads = _prod(q_shape[:-2])
    queries, keys = int(q_shape[-2]), int(k_shape[-2])
    return 2 * batch_heads * queries * keys * (
        int(q_shape[-1]) + int(v_shape[-1]))


def register_onednn_formulas() -> None:
    """Register the formulas (once; ops torch already counts are kept)."""
    formulas = (
        ('aten', '_scaled_dot_product_flash_attention_for_cpu',
         _sdpa_cpu_flops),
        ('mkldnn', '_convolution_pointwise', _conv_pointwise_flops),
        ('mkldnn', '_convolution_transpose_pointwise', _conv_transpose_flops),
        ('mkldnn', '_linear_pointwise', _linear_pointwise_flops),
    )
    for namespace, name, formula in formulas:
        op = getattr(getattr(torch.ops, namespace), name, None)
        if op is not None and op not in flop_registry:
            register_flop_formula(op)(formula)
