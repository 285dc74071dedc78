"""The I-MSA pooling block: pre-norm attention + inverted-bottleneck MLP.

Deployed (:meth:`PoolingBlock.switch_to_deploy`), a batch-1 CPU call runs
the same maths on channels-last maps, which are also the (1, H*W, C) token
layout of the attention and linear layers, so switching costs nothing:

* attention: GroupNorm -> query Linear -> softmax attention against the
  pooled keys/values (:mod:`.pooled_kv`) -> output Linear + residual;
* MLP: 1x1 conv + Hardswish, depthwise 3x3 + Hardswish, 1x1 conv fused
  with the residual (three oneDNN calls instead of eight passes).

Where the dispatcher of :mod:`interformer.ops` takes them, the attention is
``interformer::attention_bf16`` (bf16; CPUs with AVX512-BF16, AMX tiles
where present) or ``interformer::attention_f32`` (float32, AVX-512F), and
in bf16 the linear layers / 1x1 convs ``interformer::linear_bf16``
(AMX-BF16 only); otherwise PyTorch's fused
``scaled_dot_product_attention`` and oneDNN run them.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor

from interformer import ops as native_ops

from ...utils.amx_linear import AmxLinear
from ...utils.deployable import (
    Deployable,
    DeployRefused,
    overridden_method,
    to_param_dtype,
)
from ...utils.fused_norms import FusedGroupNorm
from ...utils.fused_ops import (
    ConvParams,
    LinearParams,
    channels_last,
    conv,
    conv_add,
    linear,
    linear_add,
)
from .attention import KeyValue, PoolingAttention
from .pooled_kv import PooledKeyValue, PyramidKeyValue

__all__ = ['PoolingBlock', 'build_mlp', 'as_tokens', 'as_map']

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


def as_tokens(x: Tensor) -> Tensor:
    """Channels-last (B, C, H, W) -> (B, H*W, C) view (no copy)."""
    batch, channels = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def as_map(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W, C) -> channels-last (B, C, H, W) view (no copy)."""
    batch, _, channels = tokens.shape
    return tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


_MLP_LAYOUT = (nn.Conv2d, nn.Hardswish, nn.Conv2d, nn.Hardswish, nn.Conv2d)


@dataclass
class _FusedBlock:
    """What a deployed block keeps (weights prepared for oneDNN / AMX)."""
    norm1: FusedGroupNorm
    norm_kv: FusedGroupNorm
    norm2: FusedGroupNorm
    query: LinearParams
    key_value: PyramidKeyValue
    proj: LinearParams
    mlp_in: ConvParams
    mlp_dw: ConvParams
    mlp_out: ConvParams
    attention: bool  # try the native attention op (the dispatcher picks)
    amx_query: AmxLinear
    amx_proj: AmxLinear
    amx_mlp_in: AmxLinear
    amx_mlp_out: AmxLinear


class PoolingBlock(Deployable, nn.Module):
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

    deploy_replaces = ('forward', 'key_value')

    def key_value(self, kv: Tensor) -> Union[KeyValue, PooledKeyValue]:
        """Pooled K/V of a key/value map (B, C, H, W); see
        :meth:`PoolingAttention.key_value`. Depends on ``kv`` only.

        Deployed, a batch-1 CPU map gives a :class:`PooledKeyValue` (the
        form the fused attention reads); :meth:`forward` takes both.
        """
        if self._use_deployed(kv):
            state = self._deploy_state
            return state.key_value(
                channels_last(kv.to(self._deploy_dtype)),
                state.norm_kv.params)
        return self.attn.key_value(self.norm_kv(to_param_dtype(
            kv, self.norm_kv)))

    def forward(self,
                x: Tensor,
                kv: Optional[Tensor] = None,
                key_value: Optional[Union[KeyValue,
                                          PooledKeyValue]] = None) -> Tensor:
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
        if self._use_deployed(x) and not (
                key_value is not None
                and not isinstance(key_value, PooledKeyValue)):
            return self._forward_deployed(x, kv, key_value)
        x = to_param_dtype(x, self.norm1)
        if isinstance(key_value, PooledKeyValue):
            key_value = key_value.as_pair(x.dtype)
        if key_value is None:
            key_value = self.key_value(x if kv is None else kv)
            if isinstance(key_value, PooledKeyValue):
                key_value = key_value.as_pair(x.dtype)
        x = x + self.drop_path(self.attn(self.norm1(x), key_value))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

    # ------------------------------------------------------------- deploy
    def _build_deploy_state(self, dtype: torch.dtype) -> _FusedBlock:
        attn, mlp = self.attn, self.mlp
        name = overridden_method(attn, PoolingAttention,
                                 ('forward', 'key_value'))
        if name is not None:
            raise DeployRefused(f'{type(attn).__name__} overrides {name}()')
        for norm in (self.norm1, self.norm_kv, self.norm2):
            if type(norm) is not nn.GroupNorm or norm.num_groups != 1:
                raise DeployRefused(f'PoolingBlock norm {norm!r}')
        if type(mlp) is not nn.Sequential or tuple(map(
                type, mlp)) != _MLP_LAYOUT:
            raise DeployRefused(f'PoolingBlock mlp layout {mlp!r}')
        if type(self.drop_path) not in (nn.Identity, DropPath):
            raise DeployRefused(f'PoolingBlock drop_path '
                                f'{type(self.drop_path).__name__}')
        return _FusedBlock(
            norm1=FusedGroupNorm(self.norm1, dtype),
            norm_kv=FusedGroupNorm(self.norm_kv, dtype),
            norm2=FusedGroupNorm(self.norm2, dtype),
            query=LinearParams.from_linear(attn.query_proj, dtype),
            key_value=PyramidKeyValue(attn, dtype),
            proj=LinearParams.from_linear(attn.proj, dtype),
            mlp_in=ConvParams.from_conv(mlp[0], dtype, act='hardswish'),
            mlp_dw=ConvParams.from_conv(mlp[2], dtype, act='hardswish'),
            mlp_out=ConvParams.from_conv(mlp[4], dtype),
            # the native attention of the dtype and (bf16) small linear
            # layers on AMX tiles where the dispatcher takes them
            attention=True,
            amx_query=AmxLinear(attn.query_proj.weight, attn.query_proj.bias,
                                dtype),
            amx_proj=AmxLinear(attn.proj.weight, attn.proj.bias, dtype),
            amx_mlp_in=AmxLinear(mlp[0].weight, mlp[0].bias, dtype,
                                 'hardswish'),
            amx_mlp_out=AmxLinear(mlp[4].weight, mlp[4].bias, dtype))

    def _forward_deployed(self, x: Tensor, kv: Optional[Tensor],
                          key_value: Optional[PooledKeyValue]) -> Tensor:
        """The fused route: (1, C, H, W) -> channels-last (1, C, H, W) in
        the working dtype."""
        state = self._deploy_state
        x = channels_last(x.to(self._deploy_dtype))
        if key_value is None:
            source = x if kv is None else channels_last(
                kv.to(self._deploy_dtype))
            key_value = state.key_value(source, state.norm_kv.params)
        height, width = x.shape[-2:]
        tokens = as_tokens(state.norm1(x))
        query = state.amx_query(tokens)
        if query is None:
            query = linear(tokens, state.query)
        out = self._attend(query, key_value)
        residual = as_tokens(x)
        tokens = state.amx_proj(out, residual)
        if tokens is None:
            tokens = linear_add(out, residual, state.proj)
        x = as_map(tokens, height, width)
        normed = state.norm2(x)
        hidden = state.amx_mlp_in(as_tokens(normed))
        if hidden is None:
            hidden = conv(normed, state.mlp_in)
        else:
            hidden = as_map(hidden, height, width)
        hidden = conv(hidden, state.mlp_dw)
        out = state.amx_mlp_out(as_tokens(hidden), as_tokens(x))
        if out is None:
            return conv_add(hidden, x, state.mlp_out)
        return as_map(out, height, width)

    def _attend(self, query: Tensor, key_value: PooledKeyValue) -> Tensor:
        """Softmax attention of (1, N, C) query tokens -> (1, N, C)."""
        attn = self.attn
        batch, num_queries, channels = query.shape
        args = (query, key_value.key, key_value.value, key_value.num_keys,
                attn.scale)
        name = native_ops.ATTENTION_OPS.get(query.dtype)
        if self._deploy_state.attention and name is not None and \
                native_ops.use_native(name, *args):
            return getattr(torch.ops.interformer, name)(*args)
        # (1, N, C) -> (1, heads, N, d) view; the output comes back in the
        # (1, N, heads, d) memory order, so the token view costs nothing
        query = query.view(batch, -1, attn.num_heads,
                           attn.head_dims).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            query,
            key_value.key,
            key_value.value,
            attn_mask=key_value.mask,
            scale=attn.scale)
        return out.transpose(1, 2).reshape(batch, -1, channels)
