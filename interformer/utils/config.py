"""Loading configs so that every override takes effect or is refused.

mmengine copies a config file's top-level variables into the dicts that
use them while the file is read (``data_root = 'x'`` then
``dataset=dict(data_root=data_root)``), so overriding ``data_root``
afterwards (``--cfg-options data_root=...``) changes nothing, and
``merge_from_dict`` accepts any key, typos included. Here:

* a config value ``'${name}'`` (the whole string) is a *reference* to the
  top-level key ``name`` (dotted paths allowed) and is replaced by its value
  at build time (:func:`resolve_references`), after the overrides: the
  quickstart config derives its data root and time budget this way;
* :func:`check_cfg_options` refuses an override that nothing would read: an
  unknown top-level key, a top-level variable that was only copied at load
  time, a nested key that the dict's ``type`` does not take (checked against
  the registered class's signature) or that looks like a typo of a
  neighbour, a key below a ``None`` entry; each error names the key, the
  config and the close matches.

:func:`load_config` = read + check + merge + resolve, for the tools.
"""
import difflib
import inspect
import os.path as osp
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from mmengine.config import Config

from .cli import UserError

__all__ = [
    'BUILD_TIME_KEYS', 'read_config', 'check_cfg_options',
    'resolve_references', 'load_config'
]

#: Top-level keys read after loading: by mmengine's ``Runner.from_cfg``
#: and by this project's tools (``predictor``: the click test,
#: ``quickstart_eval``: the quickstart).
BUILD_TIME_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'predictor', 'quickstart_eval'))

_REF = re.compile(r'^\$\{([A-Za-z_][\w.]*)\}$')
# mmengine registries searched for a dict's ``type`` (mmseg's children
# fall back to them).
_REGISTRY_NAMES = ('MODELS', 'DATASETS', 'TRANSFORMS', 'HOOKS', 'LOOPS',
                   'OPTIM_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS',
                   'DATA_SAMPLERS', 'VISUALIZERS', 'VISBACKENDS',
                   'LOG_PROCESSORS', 'METRICS', 'EVALUATOR', 'FUNCTIONS')


def read_config(path: str) -> Config:
    """``Config.fromfile`` with errors that name the file."""
    if not osp.isfile(path):
        if osp.isdir(path):
            raise UserError(f'config {path} is a folder, not a file')
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        raise UserError(f'cannot read config {path}: {err.msg} '
                        f'(line {err.lineno})') from err
    except (NameError, KeyError, TypeError, ValueError, AttributeError,
            FileNotFoundError) as err:
        raise UserError(f'cannot read config {path}: '
                        f'{type(err).__name__}: {err}') from err


def _close(word: str, candidates) -> List[str]:
    return difflib.get_close_matches(word, sorted(set(candidates)), n=3,
                                     cutoff=0.6)


def _matches_hint(word: str, candidates) -> str:
    close = _close(word, candidates)
    return (f'; close matches: {", ".join(close)}' if close else '')


def _root(cfg: Any) -> Any:
    """The dict behind a ``Config`` (which is not a ``Mapping``)."""
    return cfg._cfg_dict if isinstance(cfg, Config) else cfg


def _walk(node: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
    """Yield (dotted path, value) of every entry below ``node``."""
    node = _root(node)
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        path = f'{prefix}.{key}' if prefix else str(key)
        yield path, value
        yield from _walk(value, path)


def _references(cfg: Mapping) -> Dict[str, List[str]]:
    """``{referenced key: [paths that reference it]}``."""
    refs: Dict[str, List[str]] = {}
    for path, value in _walk(cfg):
        match = _REF.match(value) if isinstance(value, str) else None
        if match:
            refs.setdefault(match.group(1), []).append(path)
    return refs


def _lookup(cfg: Mapping, dotted: str) -> Any:
    node: Any = _root(cfg)
    for part in dotted.split('.'):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif (isinstance(node, (list, tuple)) and part.isdigit()
              and int(part) < len(node)):
            node = node[int(part)]
        else:
            raise KeyError(dotted)
    return node


def resolve_references(cfg: Config) -> Config:
    """Replace every ``'${key}'`` value by the value of ``key`` (in place).

    Raises:
        UserError: A reference to a key the config does not have.
    """
    for key, paths in _references(cfg).items():
        try:
            value = _lookup(cfg, key)
        except KeyError:
            raise UserError(f'{paths[0]} refers to ${{{key}}}, which the '
                            f'config {cfg.filename} does not define') \
                from None
        for path in paths:
            parent_path, _, leaf = path.rpartition('.')
            parent = (_lookup(cfg, parent_path)
                      if parent_path else _root(cfg))
            if isinstance(parent, list):
                parent[int(leaf)] = value
            else:
                parent[leaf] = value
    return cfg


def _registered_class(type_name: Any) -> Optional[type]:
    if not isinstance(type_name, str):
        return type_name if callable(type_name) else None
    from mmseg import registry
    for name in _REGISTRY_NAMES:
        reg = getattr(registry, name, None)
        if reg is None:
            continue
        try:
            obj = reg.get(type_name)
        except Exception:  # a registry's lazy import failed: not this one
            obj = None
        if obj is not None:
            return obj
    return None


def _accepted_args(obj: Any) -> Optional[List[str]]:
    """Argument names of a class/function; None if it takes ``**kwargs``
    (or its signature cannot be read)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    names = []
    for param in sig.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            return None
        names.append(param.name)
    return names


def _check_key(cfg: Config, key: str, where: str) -> None:
    parts = key.split('.')
    top = parts[0]
    if len(parts) == 1:
        if top in BUILD_TIME_KEYS or top in _references(cfg):
            return
        if top in cfg:
            value = cfg[top]
            copies = [p for p, v in _walk(cfg)
                      if '.' in p and p.split('.')[0] in BUILD_TIME_KEYS
                      and not isinstance(v, (bool, type(None)))
                      and _same(v, value)][:5]
            copied = (f'; its value is used at {", ".join(copies)}: '
                      'override those keys' if copies else '')
            raise UserError(
                f'--cfg-options {top}: {where} only uses {top!r} while the '
                f'file is read, so changing it now has no effect{copied}')
        raise UserError(
            f'--cfg-options {key}: unknown top-level key {top!r} in {where}'
            + _matches_hint(top, list(cfg) + list(BUILD_TIME_KEYS)))
    node: Any = _root(cfg)
    for depth, part in enumerate(parts):
        here = '.'.join(parts[:depth])
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
                continue
            if depth == 0:
                raise UserError(
                    f'--cfg-options {key}: unknown top-level key {part!r} '
                    f'in {where}' +
                    _matches_hint(part, list(cfg) + list(BUILD_TIME_KEYS)))
            kind = node.get('type')
            if kind is not None:
                cls = _registered_class(kind)
                args = _accepted_args(cls) if cls is not None else None
                if args is None or part in args:
                    return
                name = getattr(cls, '__name__', str(kind))
                raise UserError(
                    f'--cfg-options {key}: {here} (type {name}) takes '
                    f'no argument {part!r} ({where})' +
                    _matches_hint(part, args + list(node)))
            close = _close(part, node)
            if close:
                raise UserError(
                    f'--cfg-options {key}: {here} in {where} has no key '
                    f'{part!r}; close matches: {", ".join(close)}')
            return  # a new entry of a plain dict
        if isinstance(node, (list, tuple)):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            raise UserError(
                f'--cfg-options {key}: {here} in {where} is a list of '
                f'{len(node)}; {part!r} is not an index in it')
        raise UserError(
            f'--cfg-options {key}: {here} is {node!r} in {where}, not a '
            f'dict; set it whole, e.g. {here}="dict({part}=...)"')


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def check_cfg_options(cfg: Config, options: Optional[Mapping]) -> None:
    """Refuse ``--cfg-options`` keys that nothing would read.

    Args:
        cfg: the loaded config (before the overrides).
        options: ``{dotted key: value}`` as ``DictAction`` gives them.

    Raises:
        UserError: naming the first bad key, the config and close matches.
    """
    where = cfg.filename or 'the config'
    for key in options or {}:
        _check_key(cfg, key, where)


def load_config(path: str, cfg_options: Optional[Mapping] = None) -> Config:
    """Read a config, check and apply overrides, resolve references.

    Args:
        path: the config file.
        cfg_options: ``--cfg-options`` as a dict of dotted keys.

    Returns:
        Config: ready to build (no ``'${...}'`` references left).
    """
    cfg = read_config(path)
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(dict(cfg_options))
    return resolve_references(cfg)
