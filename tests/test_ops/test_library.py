"""Building, caching and loading the native library; the header as the one
signature declaration; the fallbacks (INTERFORMER_NATIVE=0, no compiler, a
failing build)."""
import ctypes
import os
import re
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

from interformer import ops
from interformer.ops import library

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get('CC', 'cc')) is None,
    reason='no C compiler')


def _resize_args():
    """(src, dst, accumulate) of a bilinear resize (1, 16, 5, 6) -> 40x48."""
    def cl(*shape):
        return torch.randn(*shape).contiguous(
            memory_format=torch.channels_last)
    return cl(1, 16, 5, 6), cl(1, 16, 40, 48), False


def _resized(src, dst):
    return F.interpolate(src, size=dst.shape[-2:], mode='bilinear',
                         align_corners=False)


def test_the_header_declares_every_exported_function():
    with open(library.HEADER) as f:
        signatures = library.parse_prototypes(f.read())
    declared = {support.symbol for support in ops.declared().values()}
    assert declared | {'interformer_ops_features'} == set(signatures)
    restype, argtypes = signatures['bilinear_resize']
    assert restype is ctypes.c_int
    long, int_, pointer = ctypes.c_long, ctypes.c_int, ctypes.c_void_p
    assert argtypes == [
        pointer, int_, int_, int_, int_, long, long, pointer, int_, int_,
        long, long, int_
    ]
    # every kernel source includes the header (the compiler checks it)
    for source in library.SOURCES:
        with open(source) as f:
            assert '#include "interformer_ops.h"' in f.read(), source


def test_a_prototype_the_loader_cannot_map_is_an_error():
    with pytest.raises(ValueError, match="unsupported type 'size_t'"):
        library.parse_prototypes('int f(size_t n, const float *x);')
    assert library.parse_prototypes('/* c */ void g(void);\nlong h(int a,'
                                    ' unsigned char *p);') == {
                                        'g': (None, []),
                                        'h': (ctypes.c_long,
                                              [ctypes.c_int,
                                               ctypes.c_void_p])
                                    }


@needs_compiler
def test_the_library_is_built_once_and_cached(fresh_native):
    lib = library.load()
    assert lib is not None and 'bilinear_resize' in lib.functions
    built = list(fresh_native.glob('interformer_native-*.so'))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    library._loaded.clear()  # a new process: finds the cached library
    assert library.load() is not None
    assert [p.stat().st_mtime_ns
            for p in fresh_native.glob('*.so')] == [stamp]
    assert not list(fresh_native.glob('tmp*')), 'no temporary file is left'
    assert ops.explain('bilinear_resize', *_resize_args()) == 'native'


def test_disabled_by_the_environment(fresh_native, monkeypatch):
    monkeypatch.setenv('INTERFORMER_NATIVE', '0')
    assert library.load() is None
    src, dst, _ = args = _resize_args()
    assert ops.explain('bilinear_resize', *args) == \
        'pytorch: disabled by INTERFORMER_NATIVE=0'
    torch.testing.assert_close(ops.resize(src, dst.shape[-2:], dst),
                               _resized(src, dst))
    with pytest.raises(RuntimeError, match='INTERFORMER_NATIVE=0'):
        torch.ops.interformer.bilinear_resize_(*args)
    assert not list(fresh_native.glob('*.so')), 'nothing was built'


def test_without_a_compiler_every_op_takes_pytorch(fresh_native,
                                                   monkeypatch):
    monkeypatch.setenv('CC', 'interformer-no-such-compiler')
    src, dst, _ = args = _resize_args()
    assert re.fullmatch(r"pytorch: no C compiler \('interformer-no-such-"
                        r"compiler' not found\)",
                        ops.explain('bilinear_resize', *args))
    torch.testing.assert_close(ops.resize(src, dst.shape[-2:], dst),
                               _resized(src, dst))


def test_a_failing_compiler_warns_once_and_falls_back(fresh_native,
                                                      monkeypatch):
    monkeypatch.setenv('CC', 'false')  # exits 1 without output
    src, dst, _ = args = _resize_args()
    with pytest.warns(UserWarning, match='native kernels are unavailable'):
        assert library.load() is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning
        out = ops.resize(src, dst.shape[-2:], dst)
        assert 'native kernels are unavailable' in ops.explain(
            'bilinear_resize', *args)
    torch.testing.assert_close(out, _resized(src, dst))
    assert not list(fresh_native.glob('*')), 'no partial library is left'
