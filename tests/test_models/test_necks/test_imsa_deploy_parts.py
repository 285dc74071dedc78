"""Fused routes of the neck parts against the modules' own ops: the pyramid
keys/values (the C kernel, or one grouped conv over a stacked canvas; bf16
padding + mask) and deployed PatchMerging (one strided conv + window
statistics)."""
import threading

import pytest
import torch
import torch.nn.functional as F

from interformer.models.necks.imsa import PatchMerging, PoolingAttention
from interformer.models.necks.imsa.pooled_kv import (
    KV_PAD,
    MAX_CACHED_GRIDS,
    PyramidKeyValue,
)
from interformer.models.utils.fused_ops import channels_last, onednn_available

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason='oneDNN CPU ops unavailable')


ROUTES = ('torch', 'native')


def _pyramid(attn, dtype, route='torch'):
    """A PyramidKeyValue forced onto one route (skips 'native' where the C
    kernel cannot be built)."""
    fast = PyramidKeyValue(attn, dtype)
    if route == 'torch':
        fast._native = None
    elif fast._native is None:
        pytest.skip('the native kernel is unavailable (no C compiler)')
    return fast


def _attention(seed: int, ratios=(1, 2, 3, 4), dims=16, heads=2):
    torch.manual_seed(seed)
    attn = PoolingAttention(dims, heads, ratios, target_grid=(8., 12.))
    with torch.no_grad():
        for conv in attn.dconvs:
            conv.bias.normal_()
        attn.norm.weight.uniform_(0.5, 1.5)
        attn.norm.bias.normal_()
    return attn.eval()


@pytest.mark.parametrize('route', ROUTES)
@pytest.mark.parametrize('size', [(8, 12), (13, 7), (5, 5)])
def test_pyramid_key_value_equals_the_module_fp32(size, route):
    attn = _attention(0)
    x = torch.randn(1, 16, *size)
    fast = _pyramid(attn, torch.float32, route)
    with torch.no_grad():
        key, value = attn.key_value(x)
    out = fast(channels_last(x))
    assert out.mask is None
    torch.testing.assert_close(out.key, key, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.value, value, atol=1e-5, rtol=0)
    assert out.key.is_contiguous() and out.value.is_contiguous()


def test_the_reused_canvas_keeps_no_stale_level():
    """The canvas is kept between calls; a second map of the same size, and
    a map of another size in between, must not see the first one."""
    attn = _attention(1)
    fast = _pyramid(attn, torch.float32)
    first, other, second = (torch.randn(1, 16, 9, 11) * 5,
                            torch.randn(1, 16, 6, 4),
                            torch.randn(1, 16, 9, 11))
    fast(channels_last(first))
    fast(channels_last(other))
    out = fast(channels_last(second))
    with torch.no_grad():
        key, value = attn.key_value(second)
    torch.testing.assert_close(out.key, key, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.value, value, atol=1e-5, rtol=0)


def test_a_canvas_built_in_inference_mode_is_usable_outside_it():
    attn = _attention(5)
    fast = _pyramid(attn, torch.float32)
    x = channels_last(torch.randn(1, 16, 8, 12))
    with torch.inference_mode():
        inside = fast(x)
    outside = fast(x)
    assert torch.equal(inside.key, outside.key)


@pytest.mark.parametrize('route', ROUTES)
def test_concurrent_callers_do_not_mix_their_levels(route):
    attn = _attention(6)
    fast = _pyramid(attn, torch.float32, route)
    maps = [torch.randn(1, 16, 8, 12) * (i + 1) for i in range(2)]
    with torch.no_grad():
        expected = [attn.key_value(m)[0] for m in maps]
    errors = []

    def worker(index):
        for _ in range(30):
            got = fast(channels_last(maps[index])).key
            errors.append(float((got - expected[index]).abs().max()))

    threads = [threading.Thread(target=worker, args=(i, )) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 60 and max(errors) < 1e-4


def test_layouts_are_kept_for_a_few_map_sizes_only():
    fast = _pyramid(_attention(2), torch.float32)
    for height in range(5, 6 + MAX_CACHED_GRIDS):
        fast(channels_last(torch.randn(1, 16, height, 9)))
    assert len(fast._layouts) == MAX_CACHED_GRIDS
    assert (5, 9) not in fast._layouts


@pytest.mark.parametrize('route', ROUTES)
def test_bf16_keys_are_padded_and_the_padding_is_masked_out(route):
    attn = _attention(3)
    x = torch.randn(1, 16, 8, 12)
    with torch.no_grad():
        key, value = attn.key_value(x)
    num_keys = key.shape[2]
    multiple = KV_PAD[torch.bfloat16]
    assert num_keys % multiple != 0, 'the case must need padding'
    out = _pyramid(attn, torch.bfloat16, route)(channels_last(x.bfloat16()))
    padded = out.key.shape[2]
    assert padded % multiple == 0 and num_keys < padded < num_keys + multiple
    assert out.mask.shape == (1, 1, 1, padded)
    assert out.mask[..., :num_keys].all() and not out.mask[...,
                                                           num_keys:].any()
    assert torch.isfinite(out.key.float()).all()
    torch.testing.assert_close(
        out.key[:, :, :num_keys].float(), key, atol=0.1, rtol=0.02)
    # attention over the padded, masked keys = attention over the real ones
    query = torch.randn(1, 2, 40, 8)
    expected = F.scaled_dot_product_attention(query, key, value)
    got = F.scaled_dot_product_attention(
        query.bfloat16(), out.key, out.value, attn_mask=out.mask)
    torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.02)


def _patch_merging(module, dtype):
    """The module deployed in ``dtype``."""
    module.switch_to_deploy(dtype)
    return module


@pytest.mark.parametrize('offset', [0.0, 30.0])
@pytest.mark.parametrize('size', [(9, 14), (8, 8)])
def test_deployed_patch_merging_equals_the_module(size, offset):
    """Exact in fp32 also when the patches have a large common offset
    (mean 30 standard deviations away from zero) and at the borders, where
    the zero padding enters the statistics."""
    torch.manual_seed(4)
    module = PatchMerging(12, 20).eval()
    with torch.no_grad():
        module.norm.weight.uniform_(0.5, 1.5)
        module.norm.bias.normal_()
    x = torch.randn(1, 12, *size) + offset
    with torch.no_grad():
        expected = module(x)
    with torch.no_grad():
        out = _patch_merging(module, torch.float32)(channels_last(x))
    assert out.shape == expected.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)


def test_deployed_patch_merging_bf16_stays_close():
    torch.manual_seed(5)
    module = PatchMerging(32, 64).eval()
    x = torch.randn(1, 32, 12, 16) + 2
    with torch.no_grad():
        expected = module(x.bfloat16().float())
    with torch.no_grad():
        out = _patch_merging(module, torch.bfloat16)(
            channels_last(x.bfloat16()))
    assert out.dtype == torch.bfloat16
    error = (out.float() - expected).abs()
    # a few bf16 ulps of outputs of magnitude ~1
    assert error.max() < 0.05 and error.mean() < 0.01
