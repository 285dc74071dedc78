"""Stack fixes: torch 2.13 + mmengine 0.10.7 + mmcv-lite 2.1.0 + mmseg 1.2.2.

Imported first by :mod:`interformer` (before anything touches mmseg). It holds
exactly the tested fixes of the dependency stack and nothing else:

0. Known, irrelevant warnings are silenced (see ``_silence_known_noise``).
1. mmcv-lite ships no compiled ``mmcv._ext``, yet mmseg 1.2.2 imports
   ``mmcv.ops`` at module level. A light ``mmcv.ops`` package is installed in
   ``sys.modules``: it keeps the pure-PyTorch ``point_sample`` and returns
   placeholders for compiled ops that raise only when used.
2. torch>=2.6 loads checkpoints with ``weights_only=True``; mmengine's Runner
   checkpoints hold pickled objects (``HistoryBuffer``, numpy scalars). The
   local checkpoint scheme is replaced by a trusted loader.
3. :func:`setup_cpu_distributed` gives torchrun on CPU what mmengine lacks:
   a gloo process group created before the Runner (mmengine's ``init_dist``
   calls ``torch.cuda.set_device``) and a DDP wrapper with ``device_ids=None``.
"""
import importlib.util
import os.path as osp
import sys
import types
import warnings

import mmcv
import torch

__all__ = ['setup_cpu_distributed', 'cpu_ddp_wrapper_cfg']


def _install_mmcv_ops_shim() -> None:
    """Provide ``mmcv.ops`` without compiled extensions (no-op on mmcv)."""
    if 'mmcv.ops' in sys.modules or importlib.util.find_spec(
            'mmcv._ext') is not None:
        return
    ops_dir = osp.join(osp.dirname(mmcv.__file__), 'ops')
    ops = types.ModuleType('mmcv.ops')
    ops.__path__ = [ops_dir]
    ops.__package__ = 'mmcv.ops'
    ops.__file__ = osp.join(ops_dir, '__init__.py')
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    from mmcv.ops.point_sample import bilinear_grid_sample, point_sample
    ops.point_sample = point_sample
    ops.bilinear_grid_sample = bilinear_grid_sample

    def _missing(name):

        def _new(cls, *args, **kwargs):
            raise RuntimeError(f'mmcv.ops.{name} needs compiled mmcv ops, '
                               'but mmcv-lite is installed')

        return type(name, (), {'__new__': _new, '__module__': 'mmcv.ops'})

    def __getattr__(name):
        if name.startswith('_'):
            raise AttributeError(name)  # keeps hasattr() probes safe
        obj = _missing(name)
        setattr(ops, name, obj)
        return obj

    ops.__getattr__ = __getattr__


def _install_trusted_checkpoint_loader() -> None:
    """Load local checkpoints with ``weights_only=False`` (our own files)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def _load_from_local_trusted(filename, map_location):
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return torch.load(
            filename, map_location=map_location, weights_only=False)


def cpu_ddp_wrapper_cfg() -> dict:
    """The ``model_wrapper_cfg`` that lets DDP wrap a CPU module."""
    return dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=False)


def setup_cpu_distributed(cfg) -> None:
    """Prepare a config for ``launcher='pytorch'`` on a machine without CUDA.

    Creates the gloo process group (the Runner then skips ``init_dist``),
    makes DDP wrap the model with ``device_ids=None`` and turns SyncBN into BN.
    Does nothing when CUDA is available.
    """
    if torch.cuda.is_available():
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg()
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = \
        'gloo'
    _syncbn_to_bn(cfg.get('model', {}))


def _syncbn_to_bn(node) -> None:
    """Recursively replace ``SyncBN`` norm configs by ``BN`` in place."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            _syncbn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _syncbn_to_bn(value)


def _silence_known_noise() -> None:
    """Hide two warnings that every run would print and that do not apply:
    mmcv-lite lacks the deformable attention op (unused here), and mmseg
    suggests 1 output channel for binary tasks (the official model uses 2
    classes with argmax, and checkpoints depend on it)."""
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    warnings.filterwarnings(
        'ignore', message='For binary segmentation, we suggest using')


_install_mmcv_ops_shim()
_install_trusted_checkpoint_loader()
_silence_known_noise()
