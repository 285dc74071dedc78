"""Build an InterFormer segmentor for inference from config + checkpoint."""
import os.path as osp
from typing import Optional, Union

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint

__all__ = ['init_model', 'load_model_checkpoint']


def load_model_checkpoint(model: torch.nn.Module, checkpoint: str) -> dict:
    """Load a checkpoint strictly into ``model`` with clear errors.

    Accepts a Runner checkpoint (``{'state_dict': ..., 'meta': ...}``), a
    converted official checkpoint, or a bare state dict. Raises
    ``FileNotFoundError`` for a missing file, ``RuntimeError`` naming the file
    for an unreadable/truncated one, and ``KeyError`` listing the missing and
    unexpected keys when the checkpoint does not fit the model.

    Returns:
        dict: the checkpoint's ``meta`` (empty if it has none).
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    try:
        ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    except Exception as err:  # truncated zip, not a torch file, ...
        raise RuntimeError(f'cannot read checkpoint {checkpoint}: '
                           f'{type(err).__name__}: {err}') from None
    if not isinstance(ckpt, dict):
        raise RuntimeError(f'checkpoint {checkpoint} holds a '
                           f'{type(ckpt).__name__}, not a state dict')
    state = ckpt.get('state_dict', ckpt.get('model', ckpt))
    state = {k[7:] if k.startswith('module.') else k: v
             for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(
            f'checkpoint {checkpoint} does not fit the model: '
            f'{len(missing)} missing keys {missing[:5]}, '
            f'{len(unexpected)} unexpected keys {unexpected[:5]}. '
            'An official InterFormer checkpoint must first be converted '
            'with tools/model_converters/official2interformer.py')
    bad_shapes = [f'{k}: checkpoint {tuple(v.shape)} vs model '
                  f'{tuple(own[k].shape)}' for k, v in state.items()
                  if tuple(v.shape) != tuple(own[k].shape)]
    if bad_shapes:
        raise ValueError(f'checkpoint {checkpoint} has shape mismatches '
                         f'(wrong config?): {bad_shapes[:5]}')
    model.load_state_dict(state, strict=True)
    return ckpt.get('meta', {}) or {}


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a segmentor from a config file/object for inference.

    SyncBN is reverted to BN (inference runs anywhere), pretrained-weight
    initialisation is skipped (the checkpoint provides every weight), and the
    model is put in eval mode on ``device``.

    Args:
        config: path of a config file or a loaded :class:`Config`.
        checkpoint: optional checkpoint path; without one the weights stay at
            their random initialisation.
        device: torch device string, e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: ``{dotted key: value}`` overrides merged into the
            config; a key nothing would read is refused (``UserError``
            naming it and close matches), as ``--cfg-options`` is.
    """
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import interformer  # noqa: F401  (registers the modules)

    from ..utils.config import check_cfg_options, load_config

    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        # checks the overrides against the config, resolves ${...}
        config = load_config(config, cfg_options)
    elif not isinstance(config, Config):
        raise TypeError(f'config must be a path or a Config, '
                        f'got {type(config).__name__}')
    elif cfg_options:
        check_cfg_options(config, cfg_options)
        config = config.copy()
        config.merge_from_dict(dict(cfg_options))
    register_all_modules(init_default_scope=False)
    init_default_scope(config.get('default_scope', 'mmseg'))
    model_cfg = config.model.copy()
    backbone = model_cfg.get('backbone', {})
    for key in ('pretrained', 'init_cfg'):
        if key in backbone:
            backbone[key] = None
    model_cfg.pop('pretrained', None)
    model = MODELS.build(model_cfg)
    model = revert_sync_batchnorm(model)
    if checkpoint is not None:
        load_model_checkpoint(model, checkpoint)
    model.cfg = config
    return model.to(device).eval()
