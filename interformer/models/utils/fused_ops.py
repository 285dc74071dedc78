"""Fused oneDNN primitives of the modules' deployed (inference) routes.

Every heavy layer of a deployed route is one oneDNN call through PyTorch's
``torch.ops.mkldnn`` pointwise-fusion ops (the ones ``torch.compile`` uses
on CPU): a convolution with its bias, activation and residual addition in
one pass over memory, a linear layer with its bias and activation, on
channels-last maps / token rows. These
calls run eagerly (no compilation, any input size) and use the CPU's widest
vector units: on AMD CPUs, where MKL's fp32 GEMM falls back to AVX2, oneDNN
runs fp32 layers about twice as fast as ``torch.nn.functional.linear``.

Weights are prepared once (:class:`ConvParams`, :class:`LinearParams`):
eval-mode BatchNorm folded in, channels-last layout, the working dtype
(float32, or bfloat16 for the opt-in bf16 path); the per-click layers also
keep their weights pre-packed by oneDNN per input shape. :func:`attention`
is the encoder's softmax attention (with the relative position bias); the
neck uses PyTorch's fused ``scaled_dot_product_attention``.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    'ConvParams', 'LinearParams', 'conv', 'conv_add', 'linear', 'linear_add',
    'attention', 'attention_keys', 'GatheredBias', 'conv_transpose',
    'channels_last', 'fold_batch_norm', 'norm_params',
    'onednn_available',
    'packed_weight', 'packed_linear_weight', 'MAX_PACKED_SHAPES'
]

_MKLDNN = torch.ops.mkldnn
#: Query rows per attention block (the float32 score block stays in cache).
ATTENTION_BLOCK = 2048
#: Activations oneDNN fuses into a convolution / linear layer.
FUSED_ACTIVATIONS = ('none', 'relu', 'gelu', 'hardswish')
#: Input shapes per convolution whose pre-packed weight is kept.
MAX_PACKED_SHAPES = 4


def onednn_available() -> bool:
    """True when the fused oneDNN CPU ops can be used."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(
        _MKLDNN, '_convolution_pointwise')


def channels_last(x: Tensor) -> Tensor:
    """A (B, C, H, W) tensor in channels-last memory (no copy if it is)."""
    return x.contiguous(memory_format=torch.channels_last)


def _check_activation(act: str) -> str:
    if act not in FUSED_ACTIVATIONS:
        raise ValueError(f'fused activation must be one of '
                         f'{FUSED_ACTIVATIONS}, got {act!r}')
    return act


def _algorithm(act: str) -> str:
    # 'none' selects the exact erf GELU (nn.GELU's default)
    return 'none' if act == 'gelu' else ''


@dataclass
class ConvParams:
    """A 2-D convolution ready for oneDNN.

    Attributes:
        weight: (C_out, C_in / groups, kh, kw), channels-last, working dtype.
        bias: (C_out,) or None.
        stride, padding, dilation: per axis.
        groups: convolution groups.
        act: fused activation applied after the bias.
        packed: the weight in oneDNN's blocked layout for the kernel it
            picks per input shape (filled by :func:`conv` / :func:`conv_add`;
            the plain weight would be reordered at every call, which costs
            more than the whole convolution on small maps). ``None``: never
            pack (large layers that run once per image, where a packed copy
            would only cost memory).
    """
    weight: Tensor
    bias: Optional[Tensor]
    stride: Sequence[int] = (1, 1)
    padding: Sequence[int] = (0, 0)
    dilation: Sequence[int] = (1, 1)
    groups: int = 1
    act: str = 'none'
    packed: Optional[Dict[tuple, Tensor]] = field(default_factory=dict,
                                                  repr=False)

    @classmethod
    def from_conv(cls,
                  module: nn.Conv2d,
                  dtype: torch.dtype,
                  bn: Optional[nn.modules.batchnorm._BatchNorm] = None,
                  act: str = 'none') -> 'ConvParams':
        """Copy an ``nn.Conv2d`` (optionally followed by eval-mode BN)."""
        if module.padding_mode != 'zeros' or isinstance(module.padding, str):
            raise ValueError('fast conv: only explicit zero padding is '
                             'supported')
        weight = module.weight.detach().float()
        bias = None if module.bias is None else module.bias.detach().float()
        if bn is not None:
            weight, bias = fold_batch_norm(weight, bias, bn)
        return cls(
            weight=channels_last(weight.to(dtype)),
            bias=None if bias is None else bias.to(dtype),
            stride=tuple(module.stride),
            padding=tuple(module.padding),
            dilation=tuple(module.dilation),
            groups=module.groups,
            act=_check_activation(act))

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]


@dataclass
class LinearParams:
    """A linear layer ``y = x W^T + b`` ready for oneDNN.

    ``packed`` holds the weight pre-packed by oneDNN per number of input
    rows (filled by :func:`linear`; ``None``: never pack, see
    :class:`ConvParams`).
    """
    weight: Tensor  # (N, K) contiguous
    bias: Optional[Tensor]  # (N,) or None
    act: str = 'none'
    packed: Optional[Dict[tuple, Tensor]] = field(default_factory=dict,
                                                  repr=False)

    @classmethod
    def from_linear(cls,
                    module: nn.Linear,
                    dtype: torch.dtype,
                    act: str = 'none',
                    out_scale: Optional[Tensor] = None) -> 'LinearParams':
        """Copy an ``nn.Linear``; ``out_scale`` (N,) multiplies its
        outputs (a layer scale folded into the weights)."""
        return cls.from_tensors(module.weight, module.bias, dtype, act,
                                out_scale)

    @classmethod
    def from_tensors(cls,
                     weight: Tensor,
                     bias: Optional[Tensor],
                     dtype: torch.dtype,
                     act: str = 'none',
                     out_scale: Optional[Tensor] = None) -> 'LinearParams':
        weight = weight.detach().float()
        bias = None if bias is None else bias.detach().float()
        if out_scale is not None:
            scale = out_scale.detach().float().reshape(-1)
            weight = weight * scale[:, None]
            bias = None if bias is None else bias * scale
        return cls(
            weight=weight.to(dtype).contiguous(),
            bias=None if bias is None else bias.to(dtype),
            act=_check_activation(act))


def norm_params(
        module: nn.Module) -> Tuple[Optional[Tensor], Optional[Tensor], float]:
    """(weight, bias, eps) of a LayerNorm / GroupNorm, float32."""
    weight = None if module.weight is None else module.weight.detach().float()
    bias = None if module.bias is None else module.bias.detach().float()
    return weight, bias, module.eps


def fold_batch_norm(weight: Tensor, bias: Optional[Tensor],
                    bn: nn.modules.batchnorm._BatchNorm):
    """Fold eval-mode BatchNorm into the preceding conv's weight and bias.

    Returns:
        tuple[Tensor, Tensor]: float32 weight and bias.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError('fast conv: BatchNorm without running statistics '
                         'cannot be folded')
    inv_std = torch.rsqrt(bn.running_var.detach().double() + bn.eps)
    scale = inv_std
    shift = -bn.running_mean.detach().double() * inv_std
    if bn.affine:
        gamma = bn.weight.detach().double()
        scale = scale * gamma
        shift = shift * gamma + bn.bias.detach().double()
    new_weight = weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))
    new_bias = shift if bias is None else bias.double() * scale + shift
    return new_weight.float(), new_bias.float()


def _packed(params, key: tuple, pack: Callable[[], Tensor]) -> Tensor:
    """``params.weight`` pre-packed for ``key``: looked up, else built by
    ``pack()`` and kept (the oldest of :data:`MAX_PACKED_SHAPES` entries
    is dropped); the plain weight when ``params.packed`` is None."""
    cache = params.packed
    if cache is None:
        return params.weight
    weight = cache.get(key)
    if weight is None:
        if len(cache) >= MAX_PACKED_SHAPES:
            cache.pop(next(iter(cache)))
        weight = cache[key] = pack()
    return weight


def packed_weight(params: ConvParams, x: Tensor) -> Tensor:
    """The convolution weight pre-packed by oneDNN for input ``x``'s shape.

    Same values, oneDNN's blocked memory layout (an MKLDNN tensor); kept
    for the last :data:`MAX_PACKED_SHAPES` input shapes (the predictor
    sees one canvas size per image).
    """
    return _packed(
        params, (tuple(x.shape), x.dtype),
        lambda: torch._C._nn.mkldnn_reorder_conv2d_weight(
            params.weight.contiguous().to_mkldnn(), list(params.padding),
            list(params.stride), list(params.dilation), params.groups,
            list(x.shape)))


def conv(x: Tensor, params: ConvParams) -> Tensor:
    """``act(conv(x) + b)`` on a channels-last (B, C, H, W) map."""
    return _MKLDNN._convolution_pointwise(x, packed_weight(params, x),
                                          params.bias,
                                          list(params.padding),
                                          list(params.stride),
                                          list(params.dilation),
                                          params.groups, params.act, [],
                                          _algorithm(params.act))


def conv_add(x: Tensor, residual: Tensor, params: ConvParams) -> Tensor:
    """``residual + conv(x) + b`` (no activation), one pass."""
    if params.act != 'none':
        raise ValueError('conv_add: the residual is added after the conv; '
                         'an activation would apply to the sum')
    return _MKLDNN._convolution_pointwise(x, residual,
                                          packed_weight(params, x),
                                          params.bias, list(params.padding),
                                          list(params.stride),
                                          list(params.dilation), params.groups,
                                          'add', 1.0, None, [], None)


def conv_transpose(x: Tensor, params: ConvParams) -> Tensor:
    """Transposed convolution (no output padding) with fused activation.

    ``params.weight`` has the ``nn.ConvTranspose2d`` layout
    (C_in, C_out / groups, kh, kw).
    """
    return _MKLDNN._convolution_transpose_pointwise(
        x, params.weight, params.bias, list(params.padding), [0, 0],
        list(params.stride), list(params.dilation), params.groups, params.act,
        [], _algorithm(params.act))


def packed_linear_weight(params: LinearParams, x: Tensor) -> Tensor:
    """The linear weight pre-packed by oneDNN for ``x``'s number of rows
    (same values, blocked layout; kept for a few row counts)."""
    rows = x.numel() // x.shape[-1]
    return _packed(params, (rows, x.dtype),
                   lambda: _MKLDNN._reorder_linear_weight(params.weight, rows))


def linear(x: Tensor, params: LinearParams) -> Tensor:
    """``act(x W^T + b)`` for x (..., K)."""
    return _MKLDNN._linear_pointwise(x, packed_linear_weight(params, x),
                                     params.bias, params.act, [],
                                     _algorithm(params.act))


def linear_add(x: Tensor, residual: Tensor, params: LinearParams) -> Tensor:
    """``residual + x W^T + b`` (``residual`` is not modified)."""
    if params.act != 'none':
        raise ValueError('linear_add: an activation would apply to the sum')
    # The fused binary linear op walks its bias element by element in this
    # PyTorch version (slower than the separate in-place add).
    return linear(x, params).add_(residual)


def attention_keys(key: Tensor, value: Tensor,
                   scale: float) -> Tuple[Tensor, Tensor]:
    """Keys/values in the layout :func:`attention` reads.

    Args:
        key, value: (heads, M, d) in the working dtype.
        scale: the softmax scale (folded into the keys).

    Returns:
        tuple[Tensor, Tensor]: float32 scaled keys (heads, M, d) and
        values transposed to (heads, d, M), working dtype, contiguous.
    """
    return ((key.float() * scale).contiguous(),
            value.transpose(-1, -2).contiguous())


class GatheredBias:
    """A relative-position bias gathered block by block, never stored.

    ``bias[h, i, j] = table[index[i, j], h]``; :func:`attention` gathers
    the rows of the current query block only, so the (heads, N, N) matrix
    (hundreds of MB per layer for large images) is never materialised.

    Args:
        table: (num_relative_positions, heads) bias table.
        index: (N, N) integer indices into the table.
    """

    def __init__(self, table: Tensor, index: Tensor) -> None:
        self.table_t = table.detach().float().t().contiguous()
        # int32 indices make index_select several times faster
        self.index = index if index.dtype == torch.int32 else index.to(
            torch.int32)
        self.num_keys = self.index.shape[1]

    def rows(self, head: int, start: int, stop: int) -> Tensor:
        """Bias rows ``start:stop`` of ``head``: (stop - start, N)."""
        flat = self.index[start:stop].reshape(-1)
        return torch.index_select(self.table_t[head], 0,
                                  flat).view(-1, self.num_keys)


def attention(query: Tensor,
              key: Tensor,
              value_t: Tensor,
              bias=None) -> Tensor:
    """Softmax attention, one head at a time, in query blocks.

    The scores and the softmax are float32 whatever the working dtype (the
    bf16 path keeps them exact to float32 rounding); the probabilities are
    cast to the values' dtype for the second product. Blocks of
    :data:`ATTENTION_BLOCK` query rows keep the score block in cache.

    Args:
        query: (heads, N, d) queries (any float dtype).
        key: (heads, M, d) float32 keys, pre-scaled (:func:`attention_keys`).
        value_t: (heads, d, M) values, transposed, working dtype.
        bias: optional additive float32 bias: a (heads, N, M) tensor (rows
            may be padded in memory) or a :class:`GatheredBias`.

    Returns:
        Tensor: (N, heads, d) in the dtype of ``value_t``.
    """
    heads, num_queries, head_dims = query.shape
    query = query.float()
    out = query.new_empty(num_queries, heads, head_dims, dtype=value_t.dtype)
    for head in range(heads):
        q_head = query[head]
        if not q_head.is_contiguous():
            q_head = q_head.contiguous()
        for start in range(0, num_queries, ATTENTION_BLOCK):
            stop = min(start + ATTENTION_BLOCK, num_queries)
            scores = _MKLDNN._linear_pointwise(q_head[start:stop], key[head],
                                               None, 'none', [], '')
            if isinstance(bias, GatheredBias):
                scores += bias.rows(head, start, stop)
            elif bias is not None:
                scores += bias[head, start:stop]
            probs = torch.softmax(scores, -1).to(value_t.dtype)
            out[start:stop,
                head] = _MKLDNN._linear_pointwise(probs, value_t[head], None,
                                                  'none', [], '')
    return out
