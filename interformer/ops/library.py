"""Build, cache and load the C kernels of :mod:`interformer.ops`.

The sources in ``csrc/`` are plain C (no PyTorch headers), so building
them takes a few seconds with the system's C compiler (``$CC``, default
``cc``) at first use; the shared library is cached per source, compiler
and CPU in ``$INTERFORMER_NATIVE_CACHE`` (default
``~/.cache/interformer/native``) and called through :mod:`ctypes` (which
releases the GIL). The kernels parallelise with OpenMP; loaded into a
PyTorch process, the library binds to the ``libgomp`` PyTorch already
loaded (same soname), so ``torch.set_num_threads`` applies to them too.

The signatures come from one place, ``csrc/interformer_ops.h``: every
source includes it (the compiler checks each definition against it) and
:func:`parse_prototypes` reads it to set the ctypes argument types.

Everything here is optional: with ``INTERFORMER_NATIVE=0``, without a
compiler, or if the build fails (one warning), :func:`load` returns None
and the dispatcher (:mod:`.dispatch`) routes every op to PyTorch.
"""
import ctypes
import functools
import hashlib
import os
import os.path as osp
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from typing import Dict, List, NamedTuple, Optional, Tuple

__all__ = [
    'NativeLibrary', 'load', 'native_enabled', 'unavailable_reason',
    'parse_prototypes', 'cpu_flags', 'cpu_model', 'HEADER', 'SOURCES'
]

CSRC = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc')
#: The header declaring every exported function (the single signature
#: source).
HEADER = osp.join(CSRC, 'interformer_ops.h')
SOURCES = tuple(
    sorted(
        osp.join(CSRC, name) for name in os.listdir(CSRC)
        if name.endswith('.c')))
_HEADERS = tuple(
    sorted(
        osp.join(CSRC, name) for name in os.listdir(CSRC)
        if name.endswith('.h')))
_FLAGS = ('-O3', '-march=native', '-mprefer-vector-width=512',
          '-fno-math-errno', '-fPIC', '-shared')
#: OpenMP, tried first; without it the kernels build and run on one thread.
_OPENMP_FLAGS = ('-fopenmp', )
#: Bits of ``interformer_ops_features()`` (csrc/features.c).
FEATURE_BITS = {'avx512f': 0, 'avx512_bf16': 1, 'amx_bf16': 2, 'openmp': 3}
_CTYPES = {
    'int': ctypes.c_int,
    'long': ctypes.c_long,
    'float': ctypes.c_float,
    'double': ctypes.c_double,
    'void': None,
}
_lock = threading.Lock()
_loaded: Dict[str, object] = {}


class NativeLibrary(NamedTuple):
    """The loaded kernels.

    Attributes:
        functions: exported name -> ctypes function (signature set).
        features: what the library was compiled for (``'amx_bf16'``,
            ``'avx512_bf16'``, ``'avx512f'``, ``'openmp'``).
        path: the cached shared library.
    """
    functions: Dict[str, object]
    features: frozenset
    path: str


def native_enabled() -> bool:
    """False when ``INTERFORMER_NATIVE`` is ``0`` / ``false`` / ``no`` /
    ``off`` (read at every call)."""
    value = os.environ.get('INTERFORMER_NATIVE', '1').strip().lower()
    return value not in ('0', 'false', 'no', 'off')


def parse_prototypes(text: str) -> Dict[str, Tuple[object, List[object]]]:
    """ctypes ``(restype, argtypes)`` of every prototype in a C header.

    Args:
        text: the header; prototypes are ``type name(type arg, ...);`` with
            scalar types int / long / float / double / void and pointers.

    Raises:
        ValueError: a parameter type the loader cannot map.
    """
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'^\s*#.*$', ' ', text, flags=re.M)
    out = {}
    for match in re.finditer(r'([A-Za-z_][\w\s\*]*?)\b(\w+)\s*\(([^;{}]*)\)'
                             r'\s*;', text):
        restype = _ctype(match.group(1), match.group(2))
        params = match.group(3).strip()
        argtypes = []
        if params not in ('', 'void'):
            for param in params.split(','):
                words = param.replace('*', ' * ').split()
                if len(words) < 2:
                    raise ValueError(f'{HEADER}: cannot read parameter '
                                     f'{param.strip()!r} of '
                                     f'{match.group(2)}')
                argtypes.append(_ctype(' '.join(words[:-1]), match.group(2)))
        out[match.group(2)] = (restype, argtypes)
    return out


def _ctype(declaration: str, function: str):
    if '*' in declaration:
        return ctypes.c_void_p
    words = [
        w for w in declaration.split()
        if w not in ('const', 'static', 'extern', 'inline', 'signed')
    ]
    name = ' '.join(words)
    if name not in _CTYPES:
        raise ValueError(f'{HEADER}: unsupported type {name!r} in '
                         f'{function}')
    return _CTYPES[name]


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo (empty if unreadable)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU model name (``platform.processor()`` if unknown)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def _cache_dir() -> str:
    return os.environ.get('INTERFORMER_NATIVE_CACHE') or osp.join(
        osp.expanduser('~'), '.cache', 'interformer', 'native')


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, '--version'],
                              capture_output=True,
                              text=True,
                              timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ''


def _build(compiler: str) -> str:
    """Compile the kernels (once per sources / compiler / CPU); returns the
    library path. Written to a temporary name and renamed, so concurrent
    processes never load a half-written file."""
    digest = hashlib.sha256()
    for path in SOURCES + _HEADERS:
        with open(path, 'rb') as f:
            digest.update(f.read())
    digest.update(_compiler_version(compiler).encode())
    digest.update(' '.join(sorted(cpu_flags())).encode())
    digest.update(' '.join(_FLAGS + _OPENMP_FLAGS).encode())
    cache = _cache_dir()
    target = osp.join(cache,
                      f'interformer_native-{digest.hexdigest()[:16]}.so')
    if osp.isfile(target):
        return target
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.so', dir=cache)
    os.close(fd)
    try:
        for extra in (_OPENMP_FLAGS, ()):
            result = subprocess.run(
                [compiler, *_FLAGS, *extra, '-o', tmp, *SOURCES, '-lm'],
                capture_output=True,
                text=True,
                timeout=300)
            if result.returncode == 0:
                break
        if result.returncode != 0:
            raise RuntimeError(f'{compiler} failed on {CSRC}:\n'
                               f'{result.stderr.strip()}')
        os.replace(tmp, target)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return target


def _open() -> Tuple[Optional[NativeLibrary], str]:
    """Build and load the library: (library, '') or (None, reason)."""
    compiler_name = os.environ.get('CC', 'cc')
    compiler = shutil.which(compiler_name)
    if compiler is None:
        return None, f'no C compiler ({compiler_name!r} not found)'
    try:
        with open(HEADER) as f:
            signatures = parse_prototypes(f.read())
        path = _build(compiler)
        handle = ctypes.CDLL(path)
        functions = {}
        for name, (restype, argtypes) in signatures.items():
            function = getattr(handle, name)
            function.restype = restype
            function.argtypes = argtypes
            functions[name] = function
        bits = functions['interformer_ops_features']()
    except (OSError, AttributeError, KeyError, RuntimeError, ValueError,
            subprocess.SubprocessError) as err:
        reason = f'the native kernels are unavailable ({err})'
        warnings.warn(f'interformer.ops: {reason}; using PyTorch ops')
        return None, reason
    features = frozenset(name for name, bit in FEATURE_BITS.items()
                         if bits >> bit & 1)
    return NativeLibrary(functions, features, path), ''


def load() -> Optional[NativeLibrary]:
    """The compiled library, or None (disabled by ``INTERFORMER_NATIVE=0``,
    no C compiler, or the build failed: warned once per process)."""
    if not native_enabled():
        return None
    library = _loaded.get('library', False)
    if library is False:
        with _lock:
            if 'library' not in _loaded:
                _loaded['library'], _loaded['reason'] = _open()
            library = _loaded['library']
    return library


def unavailable_reason() -> Optional[str]:
    """Why :func:`load` returns None (None if the library loads)."""
    if not native_enabled():
        return 'disabled by INTERFORMER_NATIVE=0'
    if load() is None:
        return _loaded.get('reason') or 'the native kernels are unavailable'
    return None
