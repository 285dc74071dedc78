"""Position-encoding resizing for a ViT that runs at any token grid.

The backbone is built for a fixed token grid (32x32 for a 512x512 input)
but runs at the native image size, so its absolute position embedding and
its relative-position bias must follow the actual grid. The official code
resizes both with legacy ``nearest`` :func:`torch.nn.functional.interpolate`
(not ``nearest-exact``). Nearest resizing only selects entries, so it is
expressed here as index gathers, which give bit-identical values:

* absolute pos-embed: the patch positions are a ``(h0, w0)`` map resized to
  ``(h, w)``; the cls position is kept.
* relative-position bias ``(1 + h0*w0)^2``: the cls row and the cls column
  are resized as ``(h0, w0)`` maps, the token-token block is resized over the
  key grid and then over the query grid, and the cls-cls entry is kept. The
  same selection applied to the integer relative-position index gives the
  index of the resized bias, so each layer gathers its table only once.

It also holds the bicubic resize used when loading MAE weights (14x14 ->
32x32) and a small cache of resized tensors for inference.
"""
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Hashable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'nearest_token_index', 'resize_pos_embed_nearest', 'resize_rel_pos_index',
    'resize_pos_embed_bicubic', 'ResizeCache', 'tensor_stamp'
]

NUM_EXTRA_TOKENS = 1  # the cls token


@lru_cache(maxsize=64)
def _nearest_token_index_cpu(src_hw: Tuple[int, int],
                             dst_hw: Tuple[int, int]) -> Tensor:
    src_h, src_w = src_hw
    # The index map is computed by interpolating the flat indices themselves
    # on the CPU, which reproduces F.interpolate(mode='nearest') exactly on
    # any device (float32 holds integers up to 2**24 exactly).
    flat = torch.arange(src_h * src_w, dtype=torch.float32)
    resized = F.interpolate(
        flat.view(1, 1, src_h, src_w), size=tuple(dst_hw), mode='nearest')
    return resized.view(-1).long()


def nearest_token_index(src_hw: Sequence[int],
                        dst_hw: Sequence[int],
                        device: Optional[torch.device] = None) -> Tensor:
    """Source token of every target token under legacy nearest resizing.

    Args:
        src_hw: Token grid ``(h0, w0)`` the model was built for.
        dst_hw: Actual token grid ``(h, w)``.
        device: Device of the returned tensor.

    Returns:
        Tensor: ``(h*w,)`` int64 indices into the row-major ``h0*w0`` grid.
    """
    index = _nearest_token_index_cpu((int(src_hw[0]), int(src_hw[1])),
                                     (int(dst_hw[0]), int(dst_hw[1])))
    return index.to(device) if device is not None else index.clone()


def resize_pos_embed_nearest(pos_embed: Tensor, src_hw: Sequence[int],
                             dst_hw: Sequence[int]) -> Tensor:
    """Resize an absolute pos-embed with a leading cls position (nearest).

    Args:
        pos_embed: ``(1, 1 + h0*w0, C)``.
        src_hw: ``(h0, w0)``.
        dst_hw: ``(h, w)``.

    Returns:
        Tensor: ``(1, 1 + h*w, C)``; the input itself if the grids match.
    """
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    index = nearest_token_index(src_hw, dst_hw, pos_embed.device)
    cls_pos = pos_embed[:, :NUM_EXTRA_TOKENS]
    return torch.cat((cls_pos, pos_embed[:, NUM_EXTRA_TOKENS + index]), dim=1)


def resize_rel_pos_index(rel_pos_index: Tensor, src_hw: Sequence[int],
                         dst_hw: Sequence[int]) -> Tensor:
    """Select the relative-position index of the nearest-resized bias.

    Args:
        rel_pos_index: ``(1 + h0*w0, 1 + h0*w0)`` int64 index into the bias
            table (row = query, column = key; entry 0 is the cls token).
        src_hw: ``(h0, w0)``.
        dst_hw: ``(h, w)``.

    Returns:
        Tensor: ``(1 + h*w, 1 + h*w)`` int64; ``table[out]`` equals the
        official nearest resize of ``table[rel_pos_index]``.
    """
    if tuple(src_hw) == tuple(dst_hw):
        return rel_pos_index
    device = rel_pos_index.device
    tokens = nearest_token_index(src_hw, dst_hw, device)
    keep = torch.cat((torch.zeros(1, dtype=torch.long,
                                  device=device), tokens + NUM_EXTRA_TOKENS))
    return rel_pos_index.index_select(0, keep).index_select(1, keep)


def resize_pos_embed_bicubic(pos_embed: Tensor,
                             dst_hw: Sequence[int],
                             src_hw: Optional[Sequence[int]] = None) -> Tensor:
    """Bicubically resize a pos-embed with a cls position (MAE loading).

    Args:
        pos_embed: ``(1, 1 + h0*w0, C)``.
        dst_hw: ``(h, w)``.
        src_hw: ``(h0, w0)``; inferred as a square grid when None.

    Returns:
        Tensor: ``(1, 1 + h*w, C)`` in the input dtype.

    Raises:
        ValueError: If the pos-embed shape does not fit the grid.
    """
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError('pos_embed must have shape (1, 1 + h*w, C), got '
                         f'{tuple(pos_embed.shape)}')
    num_tokens = pos_embed.shape[1] - NUM_EXTRA_TOKENS
    if src_hw is None:
        side = int(round(num_tokens**0.5))
        src_hw = (side, side)
    if src_hw[0] * src_hw[1] != num_tokens:
        raise ValueError(f'pos_embed has {num_tokens} patch positions, which '
                         f'is not a {src_hw[0]}x{src_hw[1]} grid')
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed[:, NUM_EXTRA_TOKENS:].reshape(1, src_hw[0], src_hw[1],
                                                   dim).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid.float(), size=tuple(dst_hw), mode='bicubic', align_corners=False)
    grid = grid.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat((pos_embed[:, :NUM_EXTRA_TOKENS], grid), dim=1)


def tensor_stamp(*tensors: Tensor) -> Optional[Tuple[Any, ...]]:
    """Identity + in-place version of tensors, to invalidate cached values.

    Loading a state dict or an optimizer step changes ``_version``; moving or
    casting a module replaces the storage (``data_ptr``). Returns None (do
    not cache) for inference tensors, which have no version counter.
    """
    if any(t.is_inference() for t in tensors):
        return None
    return tuple(
        (t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)


class ResizeCache:
    """A tiny LRU cache of resized tensors for inference.

    Entries are stored with a stamp (see :func:`tensor_stamp`) of the
    parameters they were computed from and are only returned while that
    stamp is unchanged. Values computed with autograd enabled must never be
    stored: the caller checks :func:`torch.is_grad_enabled`.

    Args:
        max_entries: Number of token grids kept; 0 disables the cache.
        max_bytes: Total size of the kept tensors; least recently used
            entries are dropped to stay under it, and a tensor larger than
            it is not stored. None: no limit.
    """

    def __init__(self,
                 max_entries: int = 1,
                 max_bytes: Optional[int] = None) -> None:
        if max_entries < 0:
            raise ValueError(f'max_entries must be >= 0, got {max_entries}')
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: 'OrderedDict[Hashable, tuple]' = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, stamp: Tuple[Any, ...]) -> Optional[Tensor]:
        """Return the value stored under ``key`` if ``stamp`` still holds."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] != stamp:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, stamp: Tuple[Any, ...],
            value: Tensor) -> None:
        """Store ``value``; evicts the least recently used entry if full."""
        if self.max_entries == 0 or (self.max_bytes is not None and
                                     _nbytes(value) > self.max_bytes):
            return
        self._entries[key] = (stamp, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self.nbytes > self.max_bytes):
            self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Total size of the stored tensors."""
        return sum(_nbytes(value) for _, value in self._entries.values())

    def clear(self) -> None:
        self._entries.clear()


def _nbytes(tensor: Tensor) -> int:
    """Bytes of the storage a tensor keeps alive."""
    return tensor.untyped_storage().nbytes()
