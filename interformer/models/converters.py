"""Checkpoint conversion to this implementation's parameter names.

Two sources are supported:

* the official MAE release (``mae_pretrain_vit_{base,large}.pth``, timm-style
  ``blocks.{i}.*`` keys) -> keys of :class:`MAEWithSimpleFPN` *without* the
  ``backbone.`` prefix, with the pos-embed resized bicubically to the
  training grid (14x14 -> 32x32);
* official InterFormer checkpoints (mmseg 0.x runner files) -> full-model
  keys. The official layout is kept 1:1, so this only unwraps the file and
  strips wrapper prefixes.

The conversions are pure functions; file reading/writing is limited to
:func:`load_checkpoint_file` and :func:`save_checkpoint_atomic`. The CLIs
live in ``tools/model_converters``.
"""
import os
import os.path as osp
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from .backbones.flexible_pos import resize_pos_embed_bicubic

__all__ = [
    'ConversionReport', 'load_checkpoint_file', 'unwrap_state_dict',
    'is_mae_pretrain', 'convert_mae_pretrain', 'convert_official_interformer',
    'check_state_dict', 'load_mae_backbone_state', 'save_checkpoint_atomic',
    'is_mae_provided'
]

MAE_TRAIN_GRID = (32, 32)
WRAPPER_KEYS = ('state_dict', 'model')
WRAPPER_PREFIXES = ('module.', )
BACKBONE_PREFIX = 'backbone.'
# Keys of MAE pretraining files that the backbone does not use: the final
# norm, classifier heads, and the MAE decoder / mask token.
_MAE_DROPPED = re.compile(r'^(norm\.|fc_norm\.|head\.|decoder|mask_token)')
# timm-style -> mmseg-style names inside a block ('blocks.{i}.' prefix).
_MAE_BLOCK_RENAMES = (
    ('norm1.', 'ln1.'),
    ('norm2.', 'ln2.'),
    ('mlp.fc1.', 'ffn.layers.0.0.'),
    ('mlp.fc2.', 'ffn.layers.1.'),
    ('ls1.gamma', 'gamma_1'),
    ('ls2.gamma', 'gamma_2'),
)
StateDict = Dict[str, Tensor]
# Backbone keys that a complete MAE release file provides (after the
# renames above); every other backbone key (relative-position bias, layer
# scale, SimpleFPN) is learned from its init.
_MAE_PROVIDED = re.compile(
    r'^(cls_token|pos_embed|patch_embed\.projection\.(weight|bias)|'
    r'layers\.\d+\.(ln1|ln2|attn\.qkv|attn\.proj|ffn\.layers\.0\.0|'
    r'ffn\.layers\.1)\.(weight|bias))$')


@dataclass
class ConversionReport:
    """Outcome of matching a state dict against a model.

    Attributes:
        mapped: Keys present in both with equal shapes.
        missing: Model keys absent from the state dict.
        unexpected: State-dict keys the model does not have.
    """
    mapped: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f'mapped {len(self.mapped)}, missing {len(self.missing)}, '
                f'unexpected {len(self.unexpected)}')


def load_checkpoint_file(path: str) -> dict:
    """Read a checkpoint file onto the CPU.

    The files are trusted local checkpoints (mmseg runner files pickle
    non-tensor metadata), so they are loaded with ``weights_only=False``.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is unreadable or truncated, or does not hold
            a dict; the message names the path.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # zip/pickle/EOF errors of a broken file
        raise ValueError(
            f'cannot read checkpoint {path} (truncated or not a '
            f'PyTorch file): {type(err).__name__}: {err}') from err
    if not isinstance(ckpt, Mapping):
        raise ValueError(f'checkpoint {path} holds a {type(ckpt).__name__}, '
                         'not a dict of tensors')
    return dict(ckpt)


def _innermost(ckpt: Mapping) -> Mapping:
    """Follow ``state_dict`` / ``model`` containers down to the tensors."""
    while True:
        inner = next(
            (ckpt[k]
             for k in WRAPPER_KEYS if isinstance(ckpt.get(k), Mapping)), None)
        if inner is None:
            return ckpt
        ckpt = inner


def unwrap_state_dict(ckpt: Mapping) -> StateDict:
    """Return the tensors of a (possibly wrapped) checkpoint.

    Unwraps ``state_dict`` / ``model`` containers, strips ``module.``
    prefixes and drops non-tensor entries.

    Raises:
        ValueError: If no tensor is found.
    """
    out: StateDict = OrderedDict()
    for key, value in _innermost(ckpt).items():
        if not isinstance(value, Tensor):
            continue
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    if not out:
        raise ValueError('the checkpoint holds no tensors (expected a state '
                         "dict, optionally under 'state_dict' or 'model')")
    return out


def is_mae_provided(key: str) -> bool:
    """Whether a backbone key (no ``backbone.`` prefix) is one a complete
    MAE pretraining file provides (vs. one learned from its init)."""
    return _MAE_PROVIDED.match(key) is not None


def is_mae_pretrain(state: Mapping) -> bool:
    """Whether keys are timm/MAE style (``blocks.{i}``, ``patch_embed.proj``).
    """
    return any(
        k.startswith('blocks.') or k.startswith('patch_embed.proj.')
        for k in state)


def _rename_mae_key(key: str) -> str:
    if key.startswith('patch_embed.proj.'):
        return 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
    match = re.match(r'^blocks\.(\d+)\.(.*)$', key)
    if match is None:
        return key
    rest = match.group(2)
    for old, new in _MAE_BLOCK_RENAMES:
        if rest.startswith(old):
            rest = new + rest[len(old):]
            break
    return f'layers.{match.group(1)}.{rest}'


def convert_mae_pretrain(
    state: Mapping,
    target_grid: Sequence[int] = MAE_TRAIN_GRID,
) -> StateDict:
    """Convert official MAE pretraining weights for :class:`MAEWithSimpleFPN`.

    Args:
        state: Contents of ``mae_pretrain_vit_{base,large}.pth`` (wrapped in
            ``model`` or not).
        target_grid: Token grid ``(h, w)`` of the backbone's pos-embed.

    Returns:
        dict: Tensors keyed as the backbone's own ``state_dict()`` (no
        ``backbone.`` prefix). The final ``norm``, heads, decoder and mask
        token are dropped; BEiT-style ``q_bias``/``v_bias`` become a full
        ``qkv.bias`` with a zero key bias.
    """
    state = unwrap_state_dict(state)
    out: StateDict = OrderedDict()
    for key, value in state.items():
        if _MAE_DROPPED.match(key):
            continue
        out[_rename_mae_key(key)] = value
    for key in [k for k in out if k.endswith('.attn.q_bias')]:
        base = key[:-len('q_bias')]
        q_bias = out.pop(key)
        v_bias = out.pop(base + 'v_bias')
        out[base + 'qkv.bias'] = torch.cat(
            (q_bias, torch.zeros_like(q_bias), v_bias))
    if 'pos_embed' in out:
        out['pos_embed'] = resize_pos_embed_bicubic(out['pos_embed'],
                                                    tuple(target_grid))
    return out


def convert_official_interformer(
        state: Mapping,
        renames: Optional[List[Tuple[str, str]]] = None) -> StateDict:
    """Convert an official InterFormer (mmseg 0.x) checkpoint.

    Our modules use the official names, so keys map 1:1; only the runner
    wrappers (``state_dict``/``model``, ``module.``) are removed.

    Args:
        state: Checkpoint contents.
        renames: If a list is given, every ``(old, new)`` key rename is
            appended to it.

    Returns:
        dict: Full-model state dict (``backbone.``, ``neck.``,
        ``decode_head.``, ``auxiliary_head.`` keys).

    Raises:
        ValueError: If the file is not a full InterFormer checkpoint.
    """
    raw = _innermost(state)
    out = unwrap_state_dict(raw)
    if not any(k.startswith(BACKBONE_PREFIX) for k in out):
        hint = (' It looks like MAE pretraining weights; use '
                'convert_mae_pretrain / mae2interformer.py.'
                if is_mae_pretrain(out) else '')
        raise ValueError('not an InterFormer checkpoint: no backbone.* keys.'
                         + hint)
    if renames is not None:
        tensor_keys = [k for k, v in raw.items() if isinstance(v, Tensor)]
        renames.extend(
            (old, new) for old, new in zip(tensor_keys, out) if old != new)
    return out


def check_state_dict(state: Mapping,
                     model: Union[nn.Module, Mapping]) -> ConversionReport:
    """Match converted tensors against a model's state dict.

    Args:
        state: Converted state dict.
        model: The target module (may live on the meta device) or its
            ``state_dict()``.

    Returns:
        ConversionReport: mapped / missing / unexpected keys.

    Raises:
        ValueError: Listing every key whose shape differs.
    """
    target = model.state_dict() if isinstance(model, nn.Module) else model
    report = ConversionReport()
    mismatches = []
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            mismatches.append(f'{key}: checkpoint {tuple(value.shape)} vs '
                              f'model {tuple(target[key].shape)}')
        else:
            report.mapped.append(key)
    report.missing = [k for k in target if k not in state]
    if mismatches:
        raise ValueError(f'shape mismatch for {len(mismatches)} key(s):\n  '
                         + '\n  '.join(mismatches))
    return report


def load_mae_backbone_state(path: str,
                            grid: Sequence[int] = MAE_TRAIN_GRID) -> StateDict:
    """Read MAE weights for the backbone's ``init_weights``.

    Accepts the raw MAE release file, a converted file, or one with
    ``backbone.``-prefixed keys. The pos-embed is resized bicubically to
    ``grid``; relative-position indices are dropped (they are rebuilt).
    """
    state = unwrap_state_dict(load_checkpoint_file(path))
    if is_mae_pretrain(state):
        return convert_mae_pretrain(state, grid)
    if any(k.startswith(BACKBONE_PREFIX) for k in state):
        state = OrderedDict((k[len(BACKBONE_PREFIX):], v)
                            for k, v in state.items()
                            if k.startswith(BACKBONE_PREFIX))
    state = OrderedDict(
        (k, v) for k, v in state.items() if 'relative_position_index' not in k)
    if 'pos_embed' in state and state['pos_embed'].shape[
            1] != 1 + grid[0] * grid[1]:
        state['pos_embed'] = resize_pos_embed_bicubic(state['pos_embed'],
                                                      tuple(grid))
    return state


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint_atomic(obj: dict, path: str) -> None:
    """``torch.save`` to a temp file in the target folder, then rename.

    A crash mid-write never leaves a truncated file at ``path``. The file
    gets the mode a plain ``open(path, 'wb')`` would give it (0666 minus
    the umask), not ``mkstemp``'s private 0600.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix='.' + osp.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
