"""The I-MSA pooling block: pre-norm attention + inverted-bottleneck MLP."""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor

from .attention import KeyValue, PoolingAttention

__all__ = ['PoolingBlock', 'build_mlp']

GROUP_NORM_EPS = 1e-5


def build_mlp(embed_dims: int, hidden_dims: int) -> nn.Sequential:
    """1x1 conv -> Hardswish -> depthwise 3x3 -> Hardswish -> 1x1 conv.

    The indices (0, 2, 4 hold weights) match the official state-dict keys
    ``mlp.{0,2,4}``.
    """
    return nn.Sequential(
        nn.Conv2d(embed_dims, hidden_dims, kernel_size=1),
        nn.Hardswish(),
        nn.Conv2d(
            hidden_dims,
            hidden_dims,
            kernel_size=3,
            padding=1,
            groups=hidden_dims),
        nn.Hardswish(),
        nn.Conv2d(hidden_dims, embed_dims, kernel_size=1),
    )


class PoolingBlock(nn.Module):
    """Pre-norm residual block of I-MSA on (B, C, H, W) maps.

    ``x <- x + DropPath(Attn(GN(x), GN_kv(kv)))`` then
    ``x <- x + DropPath(MLP(GN(x)))``. ``kv`` is an image feature for the
    first (cross-attention) block of a stage and the block input otherwise.
    GN is GroupNorm with one group.

    Args:
        embed_dims: channels ``C``.
        num_heads: attention heads.
        mlp_ratio: hidden channels of the MLP = ``mlp_ratio * C``.
        pool_ratios: pooling ratios of the attention pyramid.
        target_grid: (T_h, T_w) feature size at the training resolution.
        qkv_bias: bias in the query and key/value projections.
        drop_path: stochastic-depth rate of both residual branches.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float,
                 pool_ratios: Sequence[int],
                 target_grid: Tuple[float, float],
                 qkv_bias: bool = True,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.norm1 = nn.GroupNorm(1, embed_dims, eps=GROUP_NORM_EPS)
        self.norm_kv = nn.GroupNorm(1, embed_dims, eps=GROUP_NORM_EPS)
        self.attn = PoolingAttention(
            embed_dims,
            num_heads,
            pool_ratios=pool_ratios,
            target_grid=target_grid,
            qkv_bias=qkv_bias)
        self.norm2 = nn.GroupNorm(1, embed_dims, eps=GROUP_NORM_EPS)
        self.mlp = build_mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def key_value(self, kv: Tensor) -> KeyValue:
        """Pooled K/V of a key/value map (B, C, H, W); see
        :meth:`PoolingAttention.key_value`. Depends on ``kv`` only."""
        return self.attn.key_value(self.norm_kv(kv))

    def forward(self,
                x: Tensor,
                kv: Optional[Tensor] = None,
                key_value: Optional[KeyValue] = None) -> Tensor:
        """Run the block.

        Args:
            x: (B, C, H, W) queries / residual stream.
            kv: (B, C, H', W') key/value map; ``None`` means self-attention
                (``kv = x``). Ignored when ``key_value`` is given.
            key_value: precomputed output of :meth:`key_value`.

        Returns:
            Tensor: (B, C, H, W).
        """
        if x.dim() != 4 or x.shape[1] != self.embed_dims:
            raise ValueError(f'PoolingBlock: expected a (B, '
                             f'{self.embed_dims}, H, W) input, got '
                             f'{tuple(x.shape)}')
        if key_value is None:
            key_value = self.key_value(x if kv is None else kv)
        x = x + self.drop_path(self.attn(self.norm1(x), key_value))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x
