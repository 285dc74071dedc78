"""What ``tools/clicktest.py`` builds: the predictor and the dataset.

* :func:`resolve_config_and_checkpoint`: ``CONFIG CHECKPOINT``, a lone
  ``CHECKPOINT`` (the official layout: the only ``*.py`` next to it is its
  config) or a lone ``CONFIG`` (random weights, for smoke tests).
* :func:`build_predictor`: :class:`interformer.apis.InterFormerPredictor` by
  default. A config may name another predictor class with
  ``predictor = dict(type='package.module.ClassName', **kwargs)``; it is
  imported and built as ``ClassName(**kwargs)`` (stand-ins in tests,
  wrappers). ``predictor = dict(type='InterFormerPredictor', **kwargs)``
  passes extra arguments (e.g. ``precision='bf16'``) to the default one.
* :func:`build_click_test_dataset`: ``--dataset`` name -> dataset.
"""
import glob
import importlib
import os.path as osp
from typing import Optional, Sequence, Tuple

from mmengine.config import Config
from mmseg.registry import DATASETS

from ..datasets.click_eval import CLICK_EVAL_DATASETS, FolderClickEvalDataset

__all__ = [
    'resolve_config_and_checkpoint', 'build_predictor',
    'build_click_test_dataset', 'dataset_display_name', 'DEFAULT_PREDICTOR'
]

DEFAULT_PREDICTOR = 'InterFormerPredictor'
CONFIG_SUFFIX = '.py'
#: Report names of the ``--dataset`` choices.
DISPLAY_NAMES = dict(
    grabcut='GrabCut', berkeley='Berkeley', davis='DAVIS', sbd='SBD')


def resolve_config_and_checkpoint(
        paths: Sequence[str]) -> Tuple[str, Optional[str]]:
    """Split the positional paths of the click-test tools.

    Args:
        paths: ``[CONFIG, CHECKPOINT]``, ``[CHECKPOINT]`` or ``[CONFIG]``.

    Returns:
        tuple: (config path, checkpoint path or None).

    Raises:
        ValueError: wrong number of paths, or no single config next to a
            lone checkpoint.
        FileNotFoundError: a path does not exist.
    """
    if not 1 <= len(paths) <= 2:
        raise ValueError('expected CONFIG CHECKPOINT, CHECKPOINT or CONFIG, '
                         f'got {len(paths)} paths: {list(paths)}')
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'file not found: {path}')
    if len(paths) == 2:
        return paths[0], paths[1]
    path = paths[0]
    if path.endswith(CONFIG_SUFFIX):
        return path, None
    configs = sorted(glob.glob(osp.join(osp.dirname(path) or '.',
                                        '*' + CONFIG_SUFFIX)))
    if len(configs) != 1:
        raise ValueError(
            f'cannot tell the config of checkpoint {path}: found '
            f'{len(configs)} *.py files next to it ({configs[:3]}); pass '
            'CONFIG CHECKPOINT explicitly')
    return configs[0], path


def _import_class(dotted: str):
    module_name, _, attr = dotted.replace(':', '.').rpartition('.')
    if not module_name:
        raise ValueError(f'predictor type {dotted!r} must be '
                         f'{DEFAULT_PREDICTOR!r} or a dotted path '
                         "'package.module.ClassName'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ImportError(f'cannot import predictor {dotted!r}: {err}') \
            from None


def build_predictor(cfg: Config,
                    checkpoint: Optional[str] = None,
                    device: str = 'cpu',
                    precision: Optional[str] = None,
                    path: Optional[str] = None):
    """Build the click-test predictor of a config (see the module doc).

    Args:
        cfg: the loaded config.
        checkpoint: weights for the default predictor (None: random).
        device: torch device string.
        precision: ``'fp32'`` or ``'bf16'`` for the default predictor
            (None: the config's ``predictor`` entry, else fp32).
        path: ``'fast'`` or ``'reference'`` for the default predictor
            (None: the config's entry, else fast).
    """
    spec = dict(cfg.get('predictor', None) or {})
    kind = spec.pop('type', DEFAULT_PREDICTOR)
    if kind == DEFAULT_PREDICTOR:
        from ..apis import InterFormerPredictor
        if precision is not None:
            spec['precision'] = precision
        if path is not None:
            spec['path'] = path
        return InterFormerPredictor(cfg, checkpoint, device, **spec)
    if precision is not None or path is not None:
        raise ValueError(f'--precision / --path apply to the default '
                         f'predictor only, not to {kind!r}')
    return _import_class(kind)(**spec)


def dataset_display_name(name: str) -> str:
    """``'grabcut'`` -> ``'GrabCut'`` (other names are kept)."""
    return DISPLAY_NAMES.get(name.lower(), name)


def build_click_test_dataset(name: str,
                             data_root: str,
                             layout: str = 'auto',
                             **kwargs):
    """Build a click-test dataset by ``--dataset`` name or registered type.

    Args:
        name: ``'grabcut'``, ``'berkeley'``, ``'davis'``, ``'sbd'`` or the
            name of a class registered in mmseg's ``DATASETS``.
        data_root: the dataset folder.
        layout: ``'auto'``, ``'ritm'`` or ``'focuscut'`` for the folder
            datasets (GrabCut, Berkeley, DAVIS); others take only
            ``'auto'``.
        **kwargs: extra constructor arguments.
    """
    cls = CLICK_EVAL_DATASETS.get(name.lower()) or DATASETS.get(name)
    if cls is None:
        raise ValueError(f'unknown click-test dataset {name!r}; choose from '
                         f'{sorted(CLICK_EVAL_DATASETS)} or a registered '
                         'dataset type')
    if isinstance(cls, type) and issubclass(cls, FolderClickEvalDataset):
        kwargs['layout'] = layout
    elif layout != 'auto':
        raise ValueError(f'dataset {name!r} has a single layout; '
                         f'--layout {layout!r} does not apply')
    return cls(data_root=data_root, **kwargs)
