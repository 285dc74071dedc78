"""Pixel geometry shared by the predictor, the click code and zoom-in.

One box type, one convention:

* :class:`Box` is ``(y0, x0, y1, x1)``: (y, x) = (row, column) order, the
  start edges **inclusive** and the end edges **exclusive** (half-open, as
  Python slicing: ``array[box.y0:box.y1, box.x0:box.x1]`` is the box). Its
  ``height`` is ``y1 - y0``. An empty box (``y1 <= y0`` or ``x1 <= x0``)
  is never returned by :meth:`Box.from_mask`; it returns None instead.
* Foreign layouts exist only at the edges, as named conversions:
  :meth:`Box.to_xyxy` / :meth:`Box.from_xyxy` for the model's ``roi``
  tensors (``(x0, y0, x1, y1)``, ends exclusive, the official InterFormer
  layout kept by the I-MSA neck and its fixtures) and
  :meth:`Box.to_inclusive` / :meth:`Box.from_inclusive` for RITM's
  ``(rmin, rmax, cmin, cmax)`` (all ends inclusive).

The model canvas is the image padded at the bottom and right to a multiple
of ``size_divisor`` (32: the coarsest feature stride), the padding value is
0 (after normalisation) for the image and background for labels. The
per-click decoder answers on the stride-4 grid of the canvas
(:data:`GRID_STRIDE`): ``(Hc / 4, Wc / 4)`` logits.
"""
from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .reference_label import _is_tensor

if TYPE_CHECKING:
    import torch

__all__ = [
    'Box', 'GRID_STRIDE', 'SIZE_DIVISOR', 'canvas_shape', 'grid_shape',
    'pad_to_canvas', 'crop_to_image'
]

#: The decoder's output stride (logits at (Hc / 4, Wc / 4)).
GRID_STRIDE = 4
#: The canvas is padded to a multiple of this (the coarsest stride).
SIZE_DIVISOR = 32

# numpy only: tensors are handled through their own methods, so a client
# without torch can use the geometry.
ArrayLike = Union[np.ndarray, 'torch.Tensor']


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class Box(NamedTuple):
    """An axis-aligned pixel box ``(y0, x0, y1, x1)``, ends exclusive.

    Attributes:
        y0 (int): first row (inclusive).
        x0 (int): first column (inclusive).
        y1 (int): last row + 1 (exclusive).
        x1 (int): last column + 1 (exclusive).
    """
    y0: int
    x0: int
    y1: int
    x1: int

    # ------------------------------------------------------------ builders
    @classmethod
    def from_mask(cls, mask: ArrayLike) -> Optional['Box']:
        """The tight box of a (H, W) mask (numpy or torch); None if empty."""
        if mask.ndim != 2:
            raise ValueError(f'Box.from_mask: expected a 2-D (H, W) mask, '
                             f'got shape {tuple(mask.shape)}')
        if _is_tensor(mask):
            rows = mask.any(dim=1).nonzero().flatten().tolist()
            if not rows:
                return None
            cols = mask.any(dim=0).nonzero().flatten().tolist()
        else:
            mask = np.asarray(mask)
            rows = np.flatnonzero(mask.any(axis=1))
            if rows.size == 0:
                return None
            cols = np.flatnonzero(mask.any(axis=0))
        return cls(int(rows[0]), int(cols[0]), int(rows[-1]) + 1,
                   int(cols[-1]) + 1)

    @classmethod
    def from_shape(cls, height: int, width: int) -> 'Box':
        """The box of a whole ``height x width`` image."""
        return cls(0, 0, int(height), int(width))

    @classmethod
    def from_xyxy(cls, xyxy: Sequence[int]) -> 'Box':
        """From the model's roi layout ``(x0, y0, x1, y1)`` (ends
        exclusive)."""
        x0, y0, x1, y1 = (int(v) for v in xyxy)
        return cls(y0, x0, y1, x1)

    @classmethod
    def from_inclusive(cls, rmin: int, rmax: int, cmin: int,
                       cmax: int) -> 'Box':
        """From RITM's ``(rmin, rmax, cmin, cmax)``, all ends inclusive."""
        return cls(int(rmin), int(cmin), int(rmax) + 1, int(cmax) + 1)

    # --------------------------------------------------------- conversions
    def to_xyxy(self) -> Tuple[int, int, int, int]:
        """The model's roi layout ``(x0, y0, x1, y1)`` (ends exclusive)."""
        return self.x0, self.y0, self.x1, self.y1

    def to_inclusive(self) -> Tuple[int, int, int, int]:
        """RITM's ``(rmin, rmax, cmin, cmax)``, all ends inclusive."""
        return self.y0, self.y1 - 1, self.x0, self.x1 - 1

    # ----------------------------------------------------------- queries
    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def is_empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    @property
    def slices(self) -> Tuple[slice, slice]:
        """``(rows, cols)`` slices: ``array[..., *box.slices]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def contains(self, y: int, x: int) -> bool:
        """Whether pixel (y, x) is inside the box."""
        return self.y0 <= y < self.y1 and self.x0 <= x < self.x1

    # -------------------------------------------------------- operations
    def clip(self, height: int, width: int) -> 'Box':
        """Clip to a ``height x width`` image (may become empty)."""
        return Box(max(self.y0, 0), max(self.x0, 0), min(self.y1, height),
                   min(self.x1, width))

    def snap_outward(self, stride: int) -> 'Box':
        """Grow the edges outward to multiples of ``stride`` (start edges
        floored, end edges ceiled)."""
        if stride < 1:
            raise ValueError(f'Box.snap_outward: stride must be >= 1, got '
                             f'{stride}')
        return Box(self.y0 // stride * stride, self.x0 // stride * stride,
                   _ceil_to(self.y1, stride), _ceil_to(self.x1, stride))

    def on_grid(self, stride: int, height: int, width: int) -> 'Box':
        """The box on a feature map of size (height, width) and cumulative
        ``stride``: edges rounded outward and clipped to the map, keeping at
        least one cell."""
        return Box(min(self.y0 // stride, height - 1),
                   min(self.x0 // stride, width - 1),
                   min(-(-self.y1 // stride), height),
                   min(-(-self.x1 // stride), width))


# --------------------------------------------------------------- canvas
def canvas_shape(height: int,
                 width: int,
                 size_divisor: int = SIZE_DIVISOR) -> Tuple[int, int]:
    """(Hc, Wc): the image size rounded up to multiples of
    ``size_divisor``."""
    if height < 1 or width < 1 or size_divisor < 1:
        raise ValueError(f'canvas_shape: need positive sizes, got '
                         f'{height}x{width} / {size_divisor}')
    return _ceil_to(height, size_divisor), _ceil_to(width, size_divisor)


def grid_shape(canvas: Sequence[int],
               stride: int = GRID_STRIDE) -> Tuple[int, int]:
    """(Hc / stride, Wc / stride): the decoder grid of a canvas."""
    height, width = (int(v) for v in canvas)
    if height % stride or width % stride:
        raise ValueError(f'grid_shape: canvas {height}x{width} is not a '
                         f'multiple of the stride {stride}')
    return height // stride, width // stride


def pad_to_canvas(array: ArrayLike,
                  canvas: Sequence[int],
                  value=0) -> ArrayLike:
    """Pad ``(..., H, W)`` at the bottom/right to ``(..., Hc, Wc)``.

    Args:
        array: numpy array or torch tensor, the last two dims (H, W).
        canvas: (Hc, Wc) with Hc >= H and Wc >= W.
        value: fill value of the padding (0; background for labels).

    Returns:
        A new array/tensor of the same type and dtype.
    """
    height, width = array.shape[-2:]
    canvas_h, canvas_w = (int(v) for v in canvas)
    if canvas_h < height or canvas_w < width:
        raise ValueError(f'pad_to_canvas: canvas {canvas_h}x{canvas_w} is '
                         f'smaller than the array {height}x{width}')
    shape = (*array.shape[:-2], canvas_h, canvas_w)
    if _is_tensor(array):
        out = array.new_full(shape, value)
    else:
        out = np.full(shape, value, dtype=array.dtype)
    out[..., :height, :width] = array
    return out


def crop_to_image(array: ArrayLike, image_shape: Sequence[int]) -> ArrayLike:
    """The image part ``(..., :H, :W)`` of a canvas array (a view)."""
    height, width = (int(v) for v in image_shape)
    return array[..., :height, :width]
