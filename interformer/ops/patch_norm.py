"""``interformer::patch_norm_``: PatchMerging's LayerNorm after its conv.

PatchMerging (k x k stride-s unfold -> LayerNorm(k*k*C) -> Linear) is run
as one strided convolution plus per-pixel statistics. With ``u`` the
k*k*C-vector of a patch (zeros outside the map), mean ``m`` and standard
deviation ``s``, LayerNorm weight ``g`` and bias ``b`` and the linear
weight ``W``::

    W (g * (u - m) / s + b) = (conv(x, W*g) - m * rowsum(W*g)) / s + W b

so the op normalises the convolution's output ``conv`` in place:
``conv / s + (shift - m / s * row_sum)`` with ``shift = W b``. ``m`` and
``s`` come from box sums of the per-pixel channel sums of ``x`` and ``x^2``
(float64 after the per-pixel sums). C kernel ``csrc/patch_norm.c``: one
call; the PyTorch route: channel sums, an average pool and two fused
``addcmul`` passes in float32.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .dispatch import Support, check, declare, use_native
from .limits import channels_last_map, float_vector, same_dtype

__all__ = ['patch_norm', 'patch_norm_reference']


def _limits(x: Tensor, conv: Tensor, row_sum: Tensor, shift: Tensor,
            kernel_size: int, stride: int, padding: int,
            eps: float) -> Optional[str]:
    reason = channels_last_map('x', x) or channels_last_map('conv', conv) \
        or same_dtype(('x', 'conv'), x, conv)
    if reason is not None:
        return reason
    if kernel_size < 1 or stride < 1 or padding < 0:
        return (f'kernel_size {kernel_size}, stride {stride}, padding '
                f'{padding}')
    expected = tuple((n + 2 * padding - kernel_size) // stride + 1
                     for n in x.shape[2:])
    if tuple(conv.shape[2:]) != expected:
        return (f'conv: {tuple(conv.shape[2:])} pixels, the unfold of a '
                f'{tuple(x.shape[2:])} map gives {expected}')
    channels = conv.shape[1]
    return float_vector('row_sum', row_sum, channels, optional=False) or \
        float_vector('shift', shift, channels, optional=False)


SUPPORT = declare(
    'patch_norm',
    Support('patch_norm', (torch.float32, torch.bfloat16), limits=_limits))


@torch.library.custom_op('interformer::patch_norm_', mutates_args=('conv', ))
def _patch_norm_op(x: Tensor, conv: Tensor, row_sum: Tensor, shift: Tensor,
                   kernel_size: int, stride: int, padding: int,
                   eps: float) -> None:
    kernel = check('patch_norm', x, conv, row_sum, shift, kernel_size,
                   stride, padding, eps)
    if kernel(x.data_ptr(), int(x.dtype == torch.bfloat16), x.shape[2],
              x.shape[3], x.shape[1], kernel_size, stride, padding,
              conv.data_ptr(), conv.shape[2], conv.shape[3], conv.shape[1],
              row_sum.data_ptr(), shift.data_ptr(), eps) != 0:
        raise MemoryError('interformer::patch_norm_: the kernel could not '
                          'allocate its workspace')


@_patch_norm_op.register_fake
def _(x, conv, row_sum, shift, kernel_size, stride, padding, eps):
    reason = _limits(x, conv, row_sum, shift, kernel_size, stride, padding,
                     eps)
    if reason is not None:
        raise ValueError(f'interformer::patch_norm_: {reason}')


def patch_norm_reference(x: Tensor, conv: Tensor, row_sum: Tensor,
                         shift: Tensor, kernel_size: int, stride: int,
                         padding: int, eps: float) -> Tensor:
    """The PyTorch route of :func:`patch_norm` (a new tensor)."""
    channels = x.shape[1]
    x32 = x.float()
    # per-pixel channel sums of x and x^2 (float32, a reduction over the
    # contiguous dim), window means in float64
    sums = torch.cat(
        (x32.sum(1, keepdim=True), x32.square().sum(1, keepdim=True)),
        1).double()
    means = F.avg_pool2d(
        sums, kernel_size, stride, padding,
        count_include_pad=True).div_(channels)
    mean, mean_sq = means[:, :1], means[:, 1:]
    inv_std = torch.rsqrt(
        torch.addcmul(mean_sq, mean, mean,
                      value=-1).clamp_min_(0).add_(eps))
    scaled_mean = (mean * inv_std).float()
    inv_std = inv_std.float()
    out = conv.float()
    # out = conv / s + (shift - m / s * rowsum), in two fused passes
    offset = torch.addcmul(
        shift.view(1, -1, 1, 1),
        scaled_mean,
        row_sum.view(1, -1, 1, 1),
        value=-1,
        out=torch.empty_like(out))
    return torch.addcmul(offset, out, inv_std, out=out).to(conv.dtype)


def patch_norm(x: Tensor, conv: Tensor, row_sum: Tensor, shift: Tensor,
               kernel_size: int, stride: int, padding: int,
               eps: float) -> Tensor:
    """PatchMerging's normalisation of its convolution output.

    Args:
        x: (1, C, H, W) channels-last input of PatchMerging, float32 or
            bfloat16.
        conv: (1, C_out, h, w) channels-last output of the strided
            convolution with the weight ``W * g`` (x's dtype); the native
            route normalises it in place.
        row_sum: (C_out,) float32 row sums of ``W * g``.
        shift: (C_out,) float32 ``W b``.
        kernel_size, stride, padding: the unfold's.
        eps: the LayerNorm epsilon.

    Returns:
        Tensor: (1, C_out, h, w) normalised, x's dtype.
    """
    args = (x, conv, row_sum, shift, kernel_size, stride, padding, eps)
    if use_native('patch_norm', *args):
        torch.ops.interformer.patch_norm_(*args)
        return conv
    return patch_norm_reference(*args)
