"""Pyramid-pooling attention (P2T style) used by every I-MSA block.

The key/value side is split from the query side: :meth:`key_value` turns a
(normalised) key/value map into pooled K and V tokens and depends only on
that map, :meth:`forward` attends from query tokens to given K/V. For the
cross-attention blocks the key/value map is an image feature, so K/V can be
computed once per image and reused for every click.
"""
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['pooled_grid_size', 'PoolingAttention']

KeyValue = Tuple[Tensor, Tensor]

LAYER_NORM_EPS = 1e-5


def pooled_grid_size(size: int, target: float, ratio: int) -> int:
    """Side of the pooled grid along one axis (the official sizing rule).

    ``p = round(n / round(n / min(T / r, n)))`` with Python's ``round``
    (half to even). ``T`` is the feature size the model was built for
    (``target_size / stride``), so the pooled grid stays about the same size
    whatever the input size, and ``n`` splits into ``~n / p`` equal bins.

    Args:
        size: feature size ``n`` along the axis.
        target: ``T``, the feature size at the training resolution.
        ratio: pooling ratio ``r``; 1 means no pooling.

    Returns:
        int: the pooled size (``size`` itself when ``ratio == 1``).
    """
    if size <= 0:
        raise ValueError(f'pooled_grid_size: size must be positive, '
                         f'got {size}')
    if ratio < 1:
        raise ValueError(f'pooled_grid_size: ratio must be >= 1, '
                         f'got {ratio}')
    if ratio == 1:
        return size
    base = min(target / ratio, size)
    # The official rule gives 0 when T / r < 1 (e.g. round(0.5)); it then
    # fails, so a 1-pixel grid is used instead. Real configs never get there.
    return max(1, round(size / round(size / base)))


class PoolingAttention(nn.Module):
    """Multi-head attention with pyramid-pooled keys/values.

    Args:
        embed_dims: channels ``C``.
        num_heads: attention heads; ``C`` must divide evenly.
        pool_ratios: one pooling ratio per pyramid level (4 in InterFormer).
        target_grid: (T_h, T_w), the feature size at the training resolution
            (``target_size / stride``); it fixes the pooled grid sizes.
        qkv_bias: bias in the query and key/value projections.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 pool_ratios: Sequence[int],
                 target_grid: Tuple[float, float],
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f'PoolingAttention: embed_dims ({embed_dims}) '
                             f'must be divisible by num_heads ({num_heads})')
        if len(pool_ratios) == 0 or min(pool_ratios) < 1:
            raise ValueError(f'PoolingAttention: pool_ratios must be a '
                             f'non-empty sequence of ints >= 1, '
                             f'got {pool_ratios}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = self.head_dims**-0.5
        self.pool_ratios = tuple(int(r) for r in pool_ratios)
        self.target_grid = (float(target_grid[0]), float(target_grid[1]))

        self.query_proj = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.key_value_proj = nn.Linear(
            embed_dims, 2 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.norm = nn.LayerNorm(embed_dims, eps=LAYER_NORM_EPS)
        self.dconvs = nn.ModuleList([
            nn.Conv2d(
                embed_dims,
                embed_dims,
                kernel_size=3,
                padding=1,
                groups=embed_dims) for _ in self.pool_ratios
        ])
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)

    def pooled_sizes(self, height: int,
                     width: int) -> Tuple[Tuple[int, int], ...]:
        """(h, w) of every pooled grid for a key/value map of this size."""
        return tuple((pooled_grid_size(height, self.target_grid[0], r),
                      pooled_grid_size(width, self.target_grid[1], r))
                     for r in self.pool_ratios)

    def _split_heads(self, tokens: Tensor) -> Tensor:
        """(B, N, C) -> (B, heads, N, head_dims), heads split channel-wise."""
        batch, num_tokens, _ = tokens.shape
        return tokens.reshape(batch, num_tokens, self.num_heads,
                              self.head_dims).transpose(1, 2)

    def key_value(self, kv_map: Tensor) -> KeyValue:
        """Pooled keys and values of a key/value map.

        Each pyramid level adaptive-max-pools the map (ratio 1, or a grid as
        large as the map, keeps it as is) and adds a depthwise 3x3 conv of
        the pooled map. All levels are flattened row-major, concatenated in
        ratio order, layer-normed and projected to ``[K | V]``.

        Args:
            kv_map: (B, C, H, W), already normalised by the block's
                ``norm_kv``.

        Returns:
            tuple[Tensor, Tensor]: K and V, each (B, heads, N_kv, head_dims).
        """
        if kv_map.dim() != 4 or kv_map.shape[1] != self.embed_dims:
            raise ValueError(f'PoolingAttention.key_value: expected a '
                             f'(B, {self.embed_dims}, H, W) map, got '
                             f'{tuple(kv_map.shape)}')
        height, width = kv_map.shape[-2:]
        levels = []
        for (ph, pw), dconv in zip(
                self.pooled_sizes(height, width), self.dconvs):
            if (ph, pw) == (height, width):
                pooled = kv_map
            else:
                pooled = F.adaptive_max_pool2d(kv_map, (ph, pw))
            pooled = pooled + dconv(pooled)
            levels.append(pooled.flatten(2))
        tokens = self.norm(torch.cat(levels, dim=2).transpose(1, 2))
        key, value = self.key_value_proj(tokens).chunk(2, dim=-1)
        return self._split_heads(key), self._split_heads(value)

    def forward(self, query_map: Tensor,
                key_value: Union[KeyValue, Tensor]) -> Tensor:
        """Attend from every query pixel to the pooled key/value tokens.

        Args:
            query_map: (B, C, H, W) normalised queries.
            key_value: the output of :meth:`key_value`, or a (B, C, H', W')
                normalised key/value map to pool here.

        Returns:
            Tensor: (B, C, H, W).
        """
        if isinstance(key_value, Tensor):
            key_value = self.key_value(key_value)
        key, value = key_value
        batch, channels, height, width = query_map.shape
        if channels != self.embed_dims:
            raise ValueError(f'PoolingAttention: query has {channels} '
                             f'channels, expected {self.embed_dims}')
        if key.shape[0] != batch:
            raise ValueError(f'PoolingAttention: batch of the queries '
                             f'({batch}) and keys ({key.shape[0]}) differ')
        query = self._split_heads(
            self.query_proj(query_map.flatten(2).transpose(1, 2)))
        attn = (query @ key.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        out = (attn @ value).transpose(1, 2).reshape(batch, height * width,
                                                     channels)
        out = self.proj_drop(self.proj(out))
        return out.transpose(1, 2).reshape(batch, channels, height, width)
