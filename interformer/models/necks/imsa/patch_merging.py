"""PatchMerging between I-MSA stages: 3x3 unfold (stride 2) + LN + Linear."""
import torch.nn as nn
from torch import Tensor

__all__ = ['PatchMerging']

LAYER_NORM_EPS = 1e-5


class PatchMerging(nn.Module):
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
        batch = x.shape[0]
        out_h, out_w = self.output_size(*x.shape[-2:])
        tokens = self.sampler(x).transpose(1, 2)  # (B, H'W', 9C)
        tokens = self.reduction(self.norm(tokens))
        return tokens.transpose(1, 2).reshape(batch, -1, out_h, out_w)
