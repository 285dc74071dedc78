"""Shape-dependent ops written so that an ONNX graph keeps H and W dynamic.

The model computes a few sizes and indices with Python integers (cached per
input size): the pooled-grid sizes of the I-MSA pyramid, the nearest-resize
index of the ViT position encodings, the bins of adaptive pooling. Traced
for ONNX, Python integers become constants and the graph would only accept
the canvas it was exported at. The functions here compute the same values
from the tensors' shapes with tensor ops (``Shape``, ``Range``, ``Gather``
in ONNX), so they stay exact at every size:

* :func:`pooled_grid_size` is :func:`~interformer.models.necks.imsa.
  attention.pooled_grid_size` in float64 tensors (``Round`` is half to even
  in both PyTorch and ONNX, as Python's ``round``).
* :func:`adaptive_max_pool2d` / :func:`adaptive_avg_pool2d` reproduce
  PyTorch's adaptive bins (``start = floor(i n / p)``, ``end = ceil((i + 1)
  n / p)``) with one gather per axis. ONNX has no adaptive pooling, and the
  TorchScript exporter only maps it to ``MaxPool`` / ``AveragePool`` for a
  static input that the output divides. The bins of the I-MSA pyramid are
  not all equal (e.g. 43 rows into 11 bins), so a fixed-kernel pool would
  not be faithful; the gather is exact.
* :func:`nearest_index` is PyTorch's legacy ``nearest`` resize index
  (``floor(i * (src / dst))`` in float32, clamped), used for the ViT's
  absolute and relative position encodings.

All of them also run eagerly (the tests compare them with PyTorch's ops).
"""
from typing import Tuple

import torch
from torch import Tensor

__all__ = [
    'dim_size', 'as_size', 'pooled_grid_size', 'adaptive_max_pool2d',
    'adaptive_avg_pool2d', 'nearest_index'
]


def dim_size(x: Tensor, dim: int) -> Tensor:
    """Size of ``x`` along ``dim`` as a 0-dim int64 tensor (a ``Shape``
    op when traced, never a constant)."""
    return torch._shape_as_tensor(x)[dim]


def as_size(size) -> Tensor:
    """A size as a 0-dim int64 tensor: traced sizes are tensors already,
    eager ones are Python ints."""
    if isinstance(size, Tensor):
        return size.to(torch.int64)
    return torch.tensor(int(size), dtype=torch.int64)


def pooled_grid_size(size: Tensor, target: float, ratio: int) -> Tensor:
    """``max(1, round(n / round(n / min(T / r, n))))`` on a 0-dim tensor.

    Args:
        size: 0-dim int64 tensor ``n``.
        target: ``T``, feature size at the training resolution.
        ratio: pooling ratio ``r`` (> 1; ratio 1 means no pooling).

    Returns:
        Tensor: 0-dim int64 pooled size.
    """
    n = size.to(torch.float64)
    base = torch.clamp(n, max=float(target) / float(ratio))
    pooled = torch.round(n / torch.round(n / base))
    return torch.clamp(pooled, min=1.).to(torch.int64)


def _bin_index(size: Tensor, pooled: Tensor) -> Tuple[Tensor, Tensor]:
    """Gather index of PyTorch's adaptive bins along one axis.

    Returns:
        tuple[Tensor, Tensor]: ``index`` (p * L,) int64 with every bin's
        rows padded to the longest bin ``L`` by repeating its last row,
        and ``valid`` (p, L) bool, False on the padding.
    """
    i = torch.arange(pooled, dtype=torch.int64)
    start = torch.div(i * size, pooled, rounding_mode='floor')
    end = torch.div((i + 1) * size + pooled - 1, pooled,
                    rounding_mode='floor')
    longest = (end - start).max()
    offsets = start[:, None] + torch.arange(longest)[None, :]
    valid = offsets < end[:, None]
    index = torch.minimum(offsets, end[:, None] - 1)
    return index.reshape(-1), valid


def _pool_axis(x: Tensor, dim: int, pooled: Tensor, mode: str) -> Tensor:
    """Adaptive max / mean pooling of ``x`` (B, C, H, W) along ``dim``."""
    index, valid = _bin_index(dim_size(x, dim), pooled)
    gathered = x.index_select(dim, index)
    shape = list(x.shape)
    shape[dim:dim + 1] = [pooled, -1]
    gathered = gathered.reshape(shape)
    if mode == 'max':  # padding repeats a row of the bin: max unchanged
        return gathered.amax(dim + 1)
    view = [1] * gathered.dim()
    view[dim], view[dim + 1] = -1, valid.shape[1]
    weight = valid.to(x.dtype).reshape(view)
    count = valid.sum(1).to(x.dtype).reshape(view[:dim + 1] +
                                             [1] * (len(view) - dim - 2))
    return (gathered * weight).sum(dim + 1) / count


def adaptive_max_pool2d(x: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """``F.adaptive_max_pool2d(x, (height, width))`` with tensor sizes.

    Args:
        x: (B, C, H, W).
        height, width: 0-dim int64 output sizes (1 <= p <= n).

    Returns:
        Tensor: (B, C, height, width); max over rows, then over columns
        (the same maximum as PyTorch's 2-D bins).
    """
    return _pool_axis(_pool_axis(x, 2, height, 'max'), 3, width, 'max')


def adaptive_avg_pool2d(x: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """``F.adaptive_avg_pool2d(x, (height, width))`` with tensor sizes;
    mean over the rows of each bin, then over its columns."""
    return _pool_axis(_pool_axis(x, 2, height, 'mean'), 3, width, 'mean')


def nearest_index(src: int, dst: Tensor) -> Tensor:
    """Source index of every target position under legacy nearest resize.

    Args:
        src: source size (a model constant, e.g. the 32-token pos grid).
        dst: 0-dim int64 target size.

    Returns:
        Tensor: (dst,) int64, ``min(floor(i * float32(src / dst)), src-1)``
        as PyTorch's CPU kernel computes it.
    """
    scale = torch.full((), float(src), dtype=torch.float32) / dst.to(
        torch.float32)
    pos = torch.arange(dst, dtype=torch.int64).to(torch.float32) * scale
    return torch.clamp(torch.floor(pos).to(torch.int64), max=src - 1)
