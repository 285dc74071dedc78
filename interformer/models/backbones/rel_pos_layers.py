"""MAE ViT attention and encoder layer with a grid-flexible relative bias.

These subclass mmseg's ``MAEAttention`` / ``MAETransformerEncoderLayer`` so
that parameter names stay exactly those of the official checkpoints
(``attn.qkv``, ``attn.proj``, ``attn.relative_position_bias_table``,
``attn.relative_position_index``, ``ln1``, ``ln2``, ``gamma_1``, ``gamma_2``,
``ffn.layers.0.0``, ``ffn.layers.1``). The attention itself runs through
:func:`torch.nn.functional.scaled_dot_product_attention` with the relative
bias as an additive float mask.
"""
import warnings
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.backbones.mae import MAEAttention, MAETransformerEncoderLayer
from torch import Tensor

from .flexible_pos import ResizeCache, resize_rel_pos_index, tensor_stamp

__all__ = ['RelPosMAEAttention', 'RelPosMAELayer']

# Memory-efficient SDPA kernels want the mask's last-dim stride aligned.
MASK_ALIGNMENT = 16


class RelPosMAEAttention(MAEAttention):
    """Global multi-head self-attention with a relative-position bias.

    The bias table (zero-initialised) and index are built for the grid
    ``window_size``; at another token grid the bias matrix is resized as the
    official code does (see :mod:`.flexible_pos`).

    Args:
        cache_size: Token grids whose resized bias is kept for inference
            (used only while autograd is disabled); 0 disables caching.
        cache_max_bytes: Memory budget of the cached biases
            (``heads * N * N`` values each): least recently used grids are
            dropped to stay under it; a grid whose bias alone exceeds it is
            rebuilt at every forward. None: no limit.
        **kwargs: Arguments of mmseg's ``BEiTAttention`` (``embed_dims``,
            ``num_heads``, ``window_size``, ``bias``, ...).
    """

    def __init__(self,
                 *args,
                 cache_size: int = 1,
                 cache_max_bytes: Optional[int] = None,
                 **kwargs) -> None:
        with warnings.catch_warnings():
            # mmseg builds the index with torch.meshgrid without `indexing`.
            warnings.filterwarnings('ignore', message='torch.meshgrid')
            super().__init__(*args, **kwargs)
        if self.bias == 'qv_bias':
            raise ValueError('RelPosMAEAttention needs a full qkv bias '
                             "(bias=True/False), not 'qv_bias'")
        self.bias_cache = ResizeCache(cache_size, cache_max_bytes)
        self.cache_max_bytes = cache_max_bytes

    def compute_bias(self, hw_shape: Sequence[int]) -> Tensor:
        """The resized bias ``(heads, 1 + h*w, 1 + h*w)``, never cached."""
        hw_shape = (int(hw_shape[0]), int(hw_shape[1]))
        index = resize_rel_pos_index(self.relative_position_index,
                                     self.window_size, hw_shape)
        num_tokens = index.shape[0]
        table = self.relative_position_bias_table
        # One gather straight into (heads, N, N) with an aligned row stride:
        # the index rows are padded (with entry 0) to the aligned length and
        # the padding columns are sliced off. int32 indices gather fastest.
        padded = num_tokens + (-num_tokens) % MASK_ALIGNMENT
        index = F.pad(index.to(torch.int32), (0, padded - num_tokens))
        bias = torch.index_select(table.t(), 1, index.reshape(-1))
        return bias.view(-1, num_tokens, padded)[..., :num_tokens]

    def rel_pos_bias(self, hw_shape: Sequence[int]) -> Tensor:
        """Relative-position bias for a token grid.

        Args:
            hw_shape: Token grid ``(h, w)`` of the input.

        Returns:
            Tensor: ``(heads, 1 + h*w, 1 + h*w)``, row = query, col = key.
        """
        hw_shape = (int(hw_shape[0]), int(hw_shape[1]))
        if torch.is_grad_enabled():
            return self.compute_bias(hw_shape)
        stamp = tensor_stamp(self.relative_position_bias_table,
                             self.relative_position_index)
        if stamp is not None:
            cached = self.bias_cache.get(hw_shape, stamp)
            if cached is not None:
                return cached
        bias = self.compute_bias(hw_shape)
        if stamp is not None and self._fits_cache(hw_shape):
            self.bias_cache.put(hw_shape, stamp, bias)
        return bias

    def _fits_cache(self, hw_shape: Tuple[int, int]) -> bool:
        if self.cache_max_bytes is None:
            return True
        num_tokens = 1 + hw_shape[0] * hw_shape[1]
        table = self.relative_position_bias_table
        size = table.shape[1] * num_tokens**2 * table.element_size()
        return size <= self.cache_max_bytes

    def forward(self, x: Tensor, hw_shape: Sequence[int]) -> Tensor:
        """Attend over all tokens.

        Args:
            x: ``(B, 1 + h*w, C)`` tokens, cls first.
            hw_shape: Token grid ``(h, w)``.

        Returns:
            Tensor: ``(B, 1 + h*w, C)``.
        """
        batch, num_tokens, channels = x.shape
        if num_tokens != 1 + hw_shape[0] * hw_shape[1]:
            raise ValueError(f'{num_tokens} tokens do not match the token '
                             f'grid {tuple(hw_shape)} plus a cls token')
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads,
                                  -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        bias = self.rel_pos_bias(hw_shape)
        if bias.dtype != query.dtype:
            bias = bias.to(query.dtype)
        x = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=bias.unsqueeze(0),
            dropout_p=self.attn_drop.p if self.training else 0.,
            scale=self.scale)
        x = x.transpose(1, 2).reshape(batch, num_tokens, channels)
        return self.proj_drop(self.proj(x))


class RelPosMAELayer(MAETransformerEncoderLayer):
    """Pre-norm ViT block with layer scale and drop path.

    ``x + drop_path(gamma_1 * attn(ln1(x)))`` then
    ``x + drop_path(gamma_2 * ffn(ln2(x)))``.

    Args:
        cache_size: Passed to :class:`RelPosMAEAttention`.
        cache_max_bytes: Passed to :class:`RelPosMAEAttention`.
        **kwargs: Arguments of mmseg's ``BEiTTransformerEncoderLayer``.
    """

    def __init__(self,
                 *args,
                 cache_size: int = 1,
                 cache_max_bytes: Optional[int] = None,
                 **kwargs) -> None:
        kwargs['attn_cfg'] = dict(
            cache_size=cache_size, cache_max_bytes=cache_max_bytes)
        super().__init__(*args, **kwargs)

    def build_attn(self, attn_cfg: dict) -> None:
        self.attn = RelPosMAEAttention(**attn_cfg)

    def forward(self, x: Tensor, hw_shape: Sequence[int]) -> Tensor:
        """Args: x ``(B, 1 + h*w, C)``; hw_shape ``(h, w)``. Returns the
        same shape."""
        x = x + self.drop_path(self.gamma_1 * self.attn(self.ln1(x), hw_shape))
        x = x + self.drop_path(self.gamma_2 * self.ffn(self.ln2(x)))
        return x
