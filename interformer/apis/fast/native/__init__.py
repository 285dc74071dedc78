"""Small C kernels for the fast path, compiled at first use.

Some per-click steps are chains of small PyTorch operator calls whose fixed
costs (or extra passes over memory) dominate the arithmetic:

* ``pyramid_tokens.c``: the key/value tokens of an I-MSA block
  (:mod:`..pooled_kv`), a dozen calls in PyTorch;
* ``bilinear.c``: the UPerHead's resizes written straight into their
  destination (:mod:`..head`);
* ``patch_norm.c``: PatchMerging's patch statistics and normalisation
  after its strided convolution (:mod:`..neck`);
* ``norms.c``: GroupNorm(1, C) on the I-MSA maps (:mod:`..norms`);
* ``attention.c``: the blocks' bfloat16 softmax attention on AMX tiles
  (:mod:`..neck`; CPUs with AMX-BF16 only);
* ``linear.c``: the blocks' small bfloat16 projections and 1x1 convs on
  AMX tiles (:mod:`..amx_linear`; CPUs with AMX-BF16 only).

They are plain C (no PyTorch headers), so building them takes a second or
two with the system's C compiler; the shared library is cached per source,
compiler and CPU in ``$INTERFORMER_NATIVE_CACHE`` (default
``~/.cache/interformer/native``) and called through :mod:`ctypes` (which
releases the GIL).

Everything here is optional: without a compiler, with
``INTERFORMER_NATIVE=0``, or if the build fails (one warning), the fast path
keeps its PyTorch implementation, which is also the reference the tests
compare the kernel with.
"""
import contextlib
import ctypes
import hashlib
import os
import os.path as osp
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from typing import Optional

__all__ = [
    'load_pyramid_tokens', 'load_bilinear_resize', 'load_patch_norm',
    'load_group_norm', 'load_attention_bf16', 'load_linear_bf16',
    'native_enabled', 'active', 'suspended', 'MAX_CHANNELS'
]

#: Widest map the kernel takes (its per-channel workspaces are on the stack).
MAX_CHANNELS = 1024
_HERE = osp.dirname(osp.abspath(__file__))
_SOURCES = tuple(
    osp.join(_HERE, name)
    for name in ('pyramid_tokens.c', 'bilinear.c', 'patch_norm.c',
                 'norms.c', 'attention.c', 'linear.c'))
_HEADERS = tuple(osp.join(_HERE, name) for name in ('common.h', 'amx.h'))
_PTR, _INT, _LONG, _FLOAT = (ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                             ctypes.c_float)
#: C signature (return type, arguments) of every exported function.
_SIGNATURES = {
    'pyramid_tokens': (None, [
        _PTR, _INT, _INT, _INT, _INT, _INT, _PTR, _PTR, _FLOAT, _INT, _PTR,
        _PTR, _PTR, _PTR, _PTR, _FLOAT, _PTR, _PTR, _INT
    ]),
    'bilinear_resize': (_INT, [
        _PTR, _INT, _INT, _INT, _INT, _LONG, _LONG, _PTR, _INT, _INT, _LONG,
        _LONG, _INT
    ]),
    'patch_norm': (_INT, [
        _PTR, _INT, _INT, _INT, _INT, _INT, _INT, _INT, _PTR, _INT, _INT,
        _INT, _PTR, _PTR, _FLOAT
    ]),
    'group_norm': (_INT,
                   [_PTR, _INT, _LONG, _INT, _PTR, _PTR, _FLOAT, _PTR]),
    'attention_bf16': (_INT, [
        _PTR, _LONG, _PTR, _PTR, _INT, _INT, _INT, _INT, _INT, _FLOAT, _PTR,
        _LONG
    ]),
    'linear_bf16': (_INT, [
        _PTR, _LONG, _INT, _INT, _PTR, _INT, _PTR, _INT, _PTR, _LONG, _PTR,
        _LONG
    ]),
}
_FLAGS = ('-O3', '-march=native', '-mprefer-vector-width=512',
          '-fno-math-errno', '-fPIC', '-shared')
#: OpenMP, tried first (PyTorch's own runtime at load time, see common.h);
#: without it the kernels still build and run on one thread.
_OPENMP_FLAGS = ('-fopenmp', )
_lock = threading.Lock()
_loaded = {}
_suspend_depth = [0]


def native_enabled() -> bool:
    """False when ``INTERFORMER_NATIVE`` is set to ``0`` / ``false``."""
    value = os.environ.get('INTERFORMER_NATIVE', '1').strip().lower()
    return value not in ('0', 'false', 'no', 'off')


def active() -> bool:
    """False inside :func:`suspended`: the fast path then uses its PyTorch
    routes (checked at every call, so it applies to built decoders)."""
    return _suspend_depth[0] == 0


@contextlib.contextmanager
def suspended():
    """Run the fast path on PyTorch ops only, e.g. under torch's
    ``FlopCounterMode``, which cannot see into the C kernels."""
    _suspend_depth[0] += 1
    try:
        yield
    finally:
        _suspend_depth[0] -= 1


def _cache_dir() -> str:
    return os.environ.get('INTERFORMER_NATIVE_CACHE') or osp.join(
        osp.expanduser('~'), '.cache', 'interformer', 'native')


def _cpu_flags() -> str:
    """The CPU's feature flags (``-march=native`` depends on them)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return line
    except OSError:
        pass
    return platform.processor()


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
    for path in _SOURCES + _HEADERS:
        with open(path, 'rb') as f:
            digest.update(f.read())
    digest.update(_compiler_version(compiler).encode())
    digest.update(_cpu_flags().encode())
    digest.update(' '.join(_FLAGS + _OPENMP_FLAGS).encode())
    cache = _cache_dir()
    name = f'interformer_native-{digest.hexdigest()[:16]}.so'
    target = osp.join(cache, name)
    if osp.isfile(target):
        return target
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.so', dir=cache)
    os.close(fd)
    try:
        for extra in (_OPENMP_FLAGS, ()):
            result = subprocess.run(
                [compiler, *_FLAGS, *extra, '-o', tmp, *_SOURCES, '-lm'],
                capture_output=True,
                text=True,
                timeout=300)
            if result.returncode == 0:
                break
        if result.returncode != 0:
            raise RuntimeError(f'{compiler} failed on {", ".join(_SOURCES)}'
                               f':\n{result.stderr.strip()}')
        os.replace(tmp, target)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return target


def _library() -> Optional[ctypes.CDLL]:
    """The compiled library, or None (disabled, no C compiler, or the build
    failed: warned once). Call with ``_lock`` held."""
    if 'library' in _loaded:
        return _loaded['library']
    library = None
    compiler = shutil.which(os.environ.get('CC', 'cc'))
    if compiler is not None:
        try:
            library = ctypes.CDLL(_build(compiler))
            for name, (restype, argtypes) in _SIGNATURES.items():
                function = getattr(library, name)
                function.restype = restype
                function.argtypes = argtypes
        except (OSError, AttributeError, RuntimeError,
                subprocess.SubprocessError) as err:
            warnings.warn(f'fast path: the native kernels are unavailable '
                          f'({err}); using PyTorch ops')
            library = None
    _loaded['library'] = library
    return library


def _function(name: str):
    if not native_enabled():
        return None
    with _lock:
        library = _library()
    return None if library is None else getattr(library, name)


def load_pyramid_tokens():
    """The compiled ``pyramid_tokens`` (``pyramid_tokens.c``), or None."""
    return _function('pyramid_tokens')


def load_bilinear_resize():
    """The compiled ``bilinear_resize`` (``bilinear.c``), or None."""
    return _function('bilinear_resize')


def load_patch_norm():
    """The compiled ``patch_norm`` (``patch_norm.c``), or None."""
    return _function('patch_norm')


def load_group_norm():
    """The compiled ``group_norm`` (``norms.c``), or None."""
    return _function('group_norm')


def load_linear_bf16():
    """The compiled ``linear_bf16`` (``linear.c``), or None. It returns 1
    for shapes it does not take and on CPUs without AMX-BF16."""
    return _function('linear_bf16')


def load_attention_bf16():
    """The compiled ``attention_bf16`` (``attention.c``), or None. It
    returns 1 for inputs it does not take (and everywhere on CPUs without
    AMX-BF16)."""
    return _function('attention_bf16')
