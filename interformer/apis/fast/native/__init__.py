"""Small C kernels for the fast path, compiled at first use.

The per-click key/value side of an I-MSA block is a dozen tiny PyTorch
operator calls whose fixed costs dominate (:mod:`..pooled_kv`);
``pyramid_tokens.c`` does them in one call. It is plain C (no PyTorch
headers), so building it takes about a second with the system's C
compiler; the shared library is cached per source, compiler and CPU in
``$INTERFORMER_NATIVE_CACHE`` (default ``~/.cache/interformer/native``) and
called through :mod:`ctypes` (which releases the GIL).

Everything here is optional: without a compiler, with
``INTERFORMER_NATIVE=0``, or if the build fails (one warning), the fast path
keeps its PyTorch implementation, which is also the reference the tests
compare the kernel with.
"""
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

__all__ = ['load_pyramid_tokens', 'native_enabled', 'MAX_CHANNELS']

#: Widest map the kernel takes (its per-channel workspaces are on the stack).
MAX_CHANNELS = 1024
_SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'pyramid_tokens.c')
_FLAGS = ('-O3', '-march=native', '-mprefer-vector-width=512',
          '-fno-math-errno', '-fPIC', '-shared')
_lock = threading.Lock()
_loaded = {}


def native_enabled() -> bool:
    """False when ``INTERFORMER_NATIVE`` is set to ``0`` / ``false``."""
    value = os.environ.get('INTERFORMER_NATIVE', '1').strip().lower()
    return value not in ('0', 'false', 'no', 'off')


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
    """Compile the kernel (once per source / compiler / CPU); returns the
    library path. Written to a temporary name and renamed, so concurrent
    processes never load a half-written file."""
    with open(_SOURCE, 'rb') as f:
        source = f.read()
    key = hashlib.sha256(source + _compiler_version(compiler).encode() +
                         _cpu_flags().encode() +
                         ' '.join(_FLAGS).encode()).hexdigest()[:16]
    cache = _cache_dir()
    target = osp.join(cache, f'pyramid_tokens-{key}.so')
    if osp.isfile(target):
        return target
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.so', dir=cache)
    os.close(fd)
    try:
        result = subprocess.run(
            [compiler, *_FLAGS, '-o', tmp, _SOURCE, '-lm'],
            capture_output=True,
            text=True,
            timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f'{compiler} failed on {_SOURCE}:\n'
                               f'{result.stderr.strip()}')
        os.replace(tmp, target)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return target


def load_pyramid_tokens() -> Optional[ctypes._CFuncPtr]:
    """The compiled ``pyramid_tokens`` function, or None (disabled, no C
    compiler, or the build failed: warned once)."""
    if not native_enabled():
        return None
    with _lock:
        if 'pyramid_tokens' in _loaded:
            return _loaded['pyramid_tokens']
        function = None
        compiler = shutil.which(os.environ.get('CC', 'cc'))
        if compiler is not None:
            try:
                library = ctypes.CDLL(_build(compiler))
                function = library.pyramid_tokens
                function.restype = None
                function.argtypes = [
                    ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                    ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                    ctypes.c_void_p, ctypes.c_float, ctypes.c_int,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                    ctypes.c_int
                ]
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                warnings.warn(f'fast path: the native pyramid-token kernel '
                              f'is unavailable ({err}); using PyTorch ops')
                function = None
        _loaded['pyramid_tokens'] = function
        return function
