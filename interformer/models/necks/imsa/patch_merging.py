"""PatchMerging between I-MSA stages: 3x3 unfold (stride 2) + LN + Linear.

Deployed, a batch-1 CPU call is one strided convolution plus per-pixel
statistics. With ``u`` the 9C-vector of a 3x3 patch (zeros outside the
map), mean ``m`` and standard deviation ``s``, LayerNorm weight ``g`` and
bias ``b`` and the linear weight ``W``::

    W (g * (u - m) / s + b) = (conv(x, W*g) - m * rowsum(W*g)) / s + W b

``conv`` is a 3x3 stride-2 convolution whose weight is ``W*g`` reshaped to
(C_out, C, 3, 3) (the unfold order is channel-major, the conv weight
order). ``m`` and ``s`` come from box means of the channel sums of ``x``
and ``x^2`` (float64 after the per-pixel sums). This never materialises
the 9x wider unfolded map; the normalisation is two fused passes
(``addcmul``) over the conv output, in float32. The conv runs in the
working dtype: in bfloat16 its output rounding (relative 2^-9 of
``|conv(x, W*g)|``, which includes ``m * rowsum``) is of the same order as
the rounding of ``x`` itself (2^-9 of ``|x|``, which includes ``m``), so
the subtraction adds no error of a new order. (A C kernel doing the
statistics and the normalisation in one call did not beat these PyTorch
ops by 1.15x in the same-process A/B and was dropped.)
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...utils.deployable import Deployable, DeployRefused, to_param_dtype
from ...utils.fused_ops import ConvParams, channels_last, conv

__all__ = ['PatchMerging']

LAYER_NORM_EPS = 1e-5


@dataclass
class _FusedMerging:
    conv: ConvParams  # 3x3 stride-2 conv with weight W*g
    row_sum: Tensor  # (1, C_out, 1, 1) float32 rowsum(W*g)
    shift: Tensor  # (1, C_out, 1, 1) float32 W b


class PatchMerging(Deployable, nn.Module):
    """Halve the resolution: ``nn.Unfold(3, stride=2, padding=1)``.

    The unfolded features are ordered channel-major (``c * 9 + ky * 3 +
    kx``), layer-normed over ``9 * C`` and linearly reduced (no bias).

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        kernel_size: unfold window (3 in InterFormer).
        stride: unfold stride (2).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 2) -> None:
        super().__init__()
        if kernel_size < 1 or stride < 1:
            raise ValueError(f'PatchMerging: kernel_size and stride must be '
                             f'>= 1, got {kernel_size}, {stride}')
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2
        self.sampler = nn.Unfold(
            kernel_size=kernel_size, stride=stride, padding=self.padding)
        sample_dims = in_channels * kernel_size * kernel_size
        self.norm = nn.LayerNorm(sample_dims, eps=LAYER_NORM_EPS)
        self.reduction = nn.Linear(sample_dims, out_channels, bias=False)

    def output_size(self, height: int, width: int) -> tuple:
        """(H', W') for an (H, W) input, e.g. 13x9 -> 7x5."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return ((height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C_out, H', W')."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PatchMerging: expected a (B, '
                             f'{self.in_channels}, H, W) input, got '
                             f'{tuple(x.shape)}')
        if self._use_deployed(x):
            return self._forward_deployed(x)
        x = to_param_dtype(x, self.norm)
        batch = x.shape[0]
        out_h, out_w = self.output_size(*x.shape[-2:])
        tokens = self.sampler(x).transpose(1, 2)  # (B, H'W', 9C)
        tokens = self.reduction(self.norm(tokens))
        return tokens.transpose(1, 2).reshape(batch, -1, out_h, out_w)

    # ------------------------------------------------------------- deploy
    def _build_deploy_state(self, dtype: torch.dtype) -> _FusedMerging:
        if self.kernel_size % 2 != 1:
            raise DeployRefused('PatchMerging: odd kernels only')
        if type(self.norm) is not nn.LayerNorm or type(
                self.reduction) is not nn.Linear or type(
                    self.sampler) is not nn.Unfold:
            raise DeployRefused('PatchMerging: replaced norm / reduction')
        weight = self.reduction.weight.detach().double()  # (C_out, 9C)
        gamma = self.norm.weight.detach().double()
        beta = self.norm.bias.detach().double()
        scaled = weight * gamma[None]
        k, s, p = self.kernel_size, self.stride, self.padding
        return _FusedMerging(
            conv=ConvParams(
                weight=channels_last(
                    scaled.view(-1, self.in_channels, k, k).to(dtype)),
                bias=None,
                stride=(s, s),
                padding=(p, p)),
            row_sum=scaled.sum(1).float().view(1, -1, 1, 1),
            shift=(weight @ beta).float().view(1, -1, 1, 1))

    def _forward_deployed(self, x: Tensor) -> Tensor:
        """(1, C, H, W) -> channels-last (1, C_out, h, w), working dtype."""
        state = self._deploy_state
        x = channels_last(x.to(self._deploy_dtype))
        return _normalise(x, conv(x, state.conv), state.row_sum, state.shift,
                          self.kernel_size, self.stride, self.padding,
                          self.norm.eps)


def _normalise(x: Tensor, conv_out: Tensor, row_sum: Tensor, shift: Tensor,
               kernel_size: int, stride: int, padding: int,
               eps: float) -> Tensor:
    """``conv / s + (shift - m / s * row_sum)`` (module doc) for the
    (1, C_out, h, w) output of the strided conv of x (1, C, H, W); float32
    arithmetic, x's dtype out."""
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
        torch.addcmul(mean_sq, mean, mean, value=-1).clamp_min_(0).add_(eps))
    scaled_mean = (mean * inv_std).float()
    inv_std = inv_std.float()
    out = conv_out.float()
    # two fused passes
    offset = torch.addcmul(
        shift, scaled_mean, row_sum, value=-1, out=torch.empty_like(out))
    return torch.addcmul(offset, out, inv_std, out=out).to(x.dtype)
