"""The C pyramid-token kernel of the fast path (interformer/apis/fast/native):
equal to the PyTorch route it replaces, built once and cached, and optional
(disabled by the environment or a failing compiler, the fast path keeps
working)."""
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from interformer.apis.fast import native
from interformer.models.necks.imsa import PoolingAttention
from interformer.models.necks.imsa.pooled_kv import PyramidKeyValue
from interformer.models.utils.fused_ops import channels_last, norm_params

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get('CC', 'cc')) is None,
    reason='no C compiler')


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """An empty library cache and no loaded kernel."""
    monkeypatch.setenv('INTERFORMER_NATIVE_CACHE', str(tmp_path))
    monkeypatch.setattr(native, '_loaded', {})
    return tmp_path


def _attention(dims: int, seed: int = 0) -> PoolingAttention:
    torch.manual_seed(seed)
    attn = PoolingAttention(dims, 2, (1, 2, 3, 4), target_grid=(8., 12.))
    with torch.no_grad():
        for conv in attn.dconvs:
            conv.weight.normal_(0, 0.3)
            conv.bias.normal_()
        attn.norm.weight.uniform_(0.5, 1.5)
        attn.norm.bias.normal_()
    return attn.eval()


def _group_norm(dims: int, seed: int = 1) -> torch.nn.GroupNorm:
    """GroupNorm(1, C) whose weights are negative on a third of the
    channels (the kernel pools those through the minimum)."""
    torch.manual_seed(seed)
    norm = torch.nn.GroupNorm(1, dims)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.weight[::3] *= -1
        norm.bias.normal_()
    return norm


def _expected(attn, norm, x):
    with torch.no_grad():
        return attn.key_value(norm(x) if norm is not None else x)


@pytest.mark.parametrize('dims', [32, 48])  # a specialised and a generic C
@pytest.mark.parametrize('size', [(11, 16), (13, 7), (8, 12)])
@pytest.mark.parametrize('with_norm', [True, False])
def test_native_tokens_equal_the_module_fp32(dims, size, with_norm):
    attn = _attention(dims)
    norm = _group_norm(dims) if with_norm else None
    # a large common offset: the two-pass GroupNorm statistics must hold
    x = torch.randn(1, dims, *size) * 2 + 25
    fast = PyramidKeyValue(attn, torch.float32)
    assert fast._native is not None
    out = fast(channels_last(x), norm_params(norm) if with_norm else None)
    key, value = _expected(attn, norm, x)
    torch.testing.assert_close(out.key, key, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out.value, value, atol=2e-5, rtol=1e-5)


def test_native_tokens_bf16_match_the_torch_route():
    attn = _attention(64, seed=2)
    norm = _group_norm(64, seed=3)
    x = channels_last((torch.randn(1, 64, 22, 32) + 3).bfloat16())
    native_route = PyramidKeyValue(attn, torch.bfloat16)
    torch_route = PyramidKeyValue(attn, torch.bfloat16)
    torch_route._native = None
    got = native_route(x, norm_params(norm))
    ref = torch_route(x, norm_params(norm))
    assert got.key.dtype == torch.bfloat16 and got.key.shape == ref.key.shape
    assert torch.equal(got.mask, ref.mask)
    # both round to bfloat16 (3 significant digits) at different points
    for a, b in ((got.key, ref.key), (got.value, ref.value)):
        error = (a.float() - b.float()).abs()
        assert error.max() < 0.05 and error.mean() < 0.005
    # and the float32 module on the same bf16 input agrees as closely
    key, _ = _expected(attn, norm, x.float())
    num_keys = key.shape[2]
    error = (got.key[:, :, :num_keys].float() - key).abs()
    assert error.max() < 0.05 and error.mean() < 0.005


def test_the_library_is_built_once_and_cached(fresh_native):
    function = native.load_pyramid_tokens()
    assert function is not None
    built = list(fresh_native.glob('interformer_native-*.so'))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    native._loaded.clear()  # a new process: finds the cached library
    assert native.load_pyramid_tokens() is not None
    assert [p.stat().st_mtime_ns for p in fresh_native.glob('*.so')
            ] == [stamp]
    assert not list(fresh_native.glob('tmp*')), 'no temporary file is left'


def test_disabled_by_the_environment(fresh_native, monkeypatch):
    monkeypatch.setenv('INTERFORMER_NATIVE', '0')
    assert native.load_pyramid_tokens() is None
    attn = _attention(32)
    fast = PyramidKeyValue(attn, torch.float32)
    assert fast._native is None
    x = torch.randn(1, 32, 8, 12)
    key, _ = _expected(attn, None, x)
    torch.testing.assert_close(fast(channels_last(x)).key, key,
                               atol=1e-5, rtol=0)
    assert not list(fresh_native.glob('*.so')), 'nothing was built'


def test_a_failing_compiler_warns_once_and_falls_back(fresh_native,
                                                      monkeypatch):
    monkeypatch.setenv('CC', 'false')  # exits 1 without output
    with pytest.warns(UserWarning, match='native kernels'):
        assert native.load_pyramid_tokens() is None
    attn = _attention(32)
    fast = PyramidKeyValue(attn, torch.float32)  # no second warning
    assert fast._native is None
    x = torch.randn(1, 32, 8, 12)
    key, _ = _expected(attn, None, x)
    torch.testing.assert_close(fast(channels_last(x)).key, key,
                               atol=1e-5, rtol=0)
    assert not list(fresh_native.glob('*')), 'no partial library is left'


def test_unsupported_blocks_keep_the_torch_route():
    attn = _attention(32)
    for level in range(len(attn.dconvs)):
        attn.dconvs[level] = torch.nn.Conv2d(32, 32, 5, padding=2, groups=32)
    fast = PyramidKeyValue(attn, torch.float32)
    assert fast._native is None
    x = torch.randn(1, 32, 8, 12)
    with torch.no_grad():
        key, _ = attn.key_value(F.group_norm(x, 1))
    out = fast(channels_last(x), (None, None, 1e-5))
    torch.testing.assert_close(out.key, key, atol=1e-5, rtol=0)


def _resize_head(dtype):
    """A handle on the C resize of a deployed head: its _fused_resize
    method needs only these attributes."""
    from types import SimpleNamespace

    from interformer.models.decode_heads import DeployableUPerHead
    head = DeployableUPerHead.__new__(DeployableUPerHead)
    head.__dict__.update(
        _deploy_dtype=dtype,
        align_corners=False,
        _deploy_state=SimpleNamespace(
            resize_kernel=native.load_bilinear_resize()))
    assert head._deploy_state.resize_kernel is not None
    return head


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('src,dst', [((11, 16), (22, 32)),
                                     ((11, 16), (88, 128)),
                                     ((6, 6), (11, 16)), ((1, 1), (5, 7)),
                                     ((9, 13), (9, 13)), ((20, 30), (7, 9))])
@pytest.mark.parametrize('channels', [64, 24])
def test_native_resize_equals_interpolate(dtype, src, dst, channels):
    head = _resize_head(dtype)
    x = channels_last(torch.randn(1, channels, *src).to(dtype))
    expected = F.interpolate(
        x.float(), size=dst, mode='bilinear', align_corners=False)
    got = head._fused_resize(x, dst)
    assert got.dtype == dtype and got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    else:  # one rounding of the float32 result (at most one bf16 step)
        torch.testing.assert_close(got.float(), expected, atol=1e-6,
                                   rtol=2**-7)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_native_resize_into_a_channel_slice_and_accumulating(dtype):
    head = _resize_head(dtype)
    x = channels_last(torch.randn(1, 32, 11, 16).to(dtype))
    wide = channels_last(torch.full((1, 96, 44, 64), 7.0, dtype=dtype))
    head._fused_resize(x, (44, 64), out=wide[:, 32:64])
    expected = F.interpolate(
        x.float(), size=(44, 64), mode='bilinear', align_corners=False)
    tol = dict(atol=1e-6, rtol=1e-6) if dtype == torch.float32 else dict(
        atol=1e-6, rtol=2**-7)
    torch.testing.assert_close(wide[:, 32:64].float(), expected.to(
        dtype).float(), **tol)
    assert (wide[:, :32] == 7).all() and (wide[:, 64:] == 7).all()
    base = channels_last(torch.randn(1, 32, 44, 64).to(dtype))
    summed = base.clone()
    head._fused_resize(x, (44, 64), out=summed, accumulate=True)
    torch.testing.assert_close(
        summed.float(), (base.float() + expected).to(dtype).float(),
        **tol)


@pytest.mark.parametrize('channels', [32, 64, 128])  # the specialised widths
def test_native_patch_merging_equals_the_module(channels):
    from interformer.models.necks.imsa import PatchMerging
    torch.manual_seed(channels)
    module = PatchMerging(channels, 2 * channels).eval()
    with torch.no_grad():
        module.norm.weight.uniform_(0.5, 1.5)
        module.norm.bias.normal_()
    x = torch.randn(1, channels, 11, 16) * 2 + 5
    with torch.no_grad():
        expected = module(x)
        module.switch_to_deploy(torch.float32)
        assert module._deploy_state.kernel is not None
        got = module(channels_last(x))
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('channels', [32, 48, 256])
@pytest.mark.parametrize('offset', [0.0, 40.0])
def test_native_group_norm_equals_pytorch(channels, offset):
    from interformer.models.utils.fused_norms import (
        FusedGroupNorm as FastGroupNorm,
    )
    module = _group_norm(channels, seed=channels)
    x = channels_last(torch.randn(1, channels, 13, 21) * 3 + offset)
    fast = FastGroupNorm(module, torch.float32)
    assert fast._native is not None
    # float64 reference: with a large offset PyTorch's own float32 kernel
    # is off by ~1e-4 here, the two-pass statistics by ~2e-6
    expected = F.group_norm(x.double(), 1, module.weight.double(),
                            module.bias.double(), module.eps)
    got = fast(x)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=0)
    got16 = FastGroupNorm(module, torch.bfloat16)(x.bfloat16())
    assert got16.dtype == torch.bfloat16
    expected16 = F.group_norm(x.bfloat16().double(), 1,
                              module.weight.double(), module.bias.double(),
                              module.eps)
    torch.testing.assert_close(got16.double(), expected16, atol=1e-2,
                               rtol=2**-7)


@pytest.mark.parametrize('heads,queries,keys,valid',
                         [(1, 512, 256, 250), (2, 37, 48, 48), (2, 9, 48, 47),
                          (4, 100, 272, 260), (8, 16, 16, 1)])
def test_native_attention_matches_float32_attention(heads, queries, keys,
                                                    valid):
    """The AMX kernel against float32 attention on the same bf16 inputs:
    as close as PyTorch's own bf16 kernel (P and the output are rounded to
    bf16 in both). Partial query blocks, key counts that are not a multiple
    of the 32-key chunk and masked keys included."""
    attention = native.load_attention_bf16()
    torch.manual_seed(heads)
    channels = heads * 32
    query = torch.randn(1, queries, channels).bfloat16()
    key = torch.randn(1, heads, keys, 32).bfloat16()
    value = torch.randn(1, heads, keys, 32).bfloat16()
    scale = 32**-0.5
    out = torch.full_like(query, float('nan'))
    if attention(query.data_ptr(), channels, key.data_ptr(),
                 value.data_ptr(), heads, queries, keys, valid, 32, scale,
                 out.data_ptr(), channels) != 0:
        pytest.skip('no AMX-BF16 on this CPU')
    mask = (torch.arange(keys) < valid).view(1, 1, 1, -1)
    per_head = query.view(1, queries, heads, 32).transpose(1, 2)
    expected = F.scaled_dot_product_attention(
        per_head.float(), key.float(), value.float(), attn_mask=mask,
        scale=scale).transpose(1, 2).reshape(1, queries, channels)
    pytorch_bf16 = F.scaled_dot_product_attention(
        per_head, key, value, attn_mask=mask,
        scale=scale).transpose(1, 2).reshape(1, queries, channels)
    budget = (pytorch_bf16.float() - expected).abs().max().item()
    error = (out.float() - expected).abs().max().item()
    assert error <= 1.5 * budget + 1e-3, (error, budget)


def test_native_attention_refuses_what_it_does_not_take():
    attention = native.load_attention_bf16()
    query = torch.randn(1, 16, 64).bfloat16()
    key = torch.randn(1, 1, 16, 64).bfloat16()
    out = torch.empty_like(query)
    # 64 head dimensions, and a non-positive scale: the caller falls back
    assert attention(query.data_ptr(), 64, key.data_ptr(), key.data_ptr(),
                     1, 16, 16, 16, 64, 0.125, out.data_ptr(), 64) == 1
    assert attention(query.data_ptr(), 64, key.data_ptr(), key.data_ptr(),
                     2, 16, 16, 16, 32, -1.0, out.data_ptr(), 64) == 1


def test_fast_block_bf16_attention_routes_agree():
    """A bf16 I-MSA block with the AMX attention and with PyTorch's SDPA."""
    from interformer.models.necks.imsa.blocks import PoolingBlock
    torch.manual_seed(7)
    block = PoolingBlock(64, 2, 4, (1, 2, 3, 4), (8., 12.)).eval()
    block.switch_to_deploy(torch.bfloat16)
    if block._deploy_state.attention is None:
        pytest.skip('no native attention')
    x = channels_last(torch.randn(1, 64, 12, 17).bfloat16())
    with torch.inference_mode():
        got = block(x)
        block._deploy_state.attention = None
        reference = block(x)
    assert got.shape == reference.shape and torch.isfinite(got.float()).all()
    error = (got.float() - reference.float()).abs()
    assert error.max() < 0.1 and error.mean() < 0.01


def test_suspended_runs_the_pytorch_routes():
    """native.suspended() (used while counting FLOPs) switches built
    objects to their PyTorch routes and back."""
    attn = _attention(32)
    fast = PyramidKeyValue(attn, torch.float32)
    x = channels_last(torch.randn(1, 32, 8, 12))
    calls = []
    kernel = fast._native
    fast._native = lambda *args: calls.append(1) or kernel(*args)
    fast(x)
    with native.suspended():
        assert not native.active()
        fast(x)
    assert native.active()
    fast(x)
    assert len(calls) == 2


@pytest.mark.parametrize('rows,features,outputs,act',
                         [(704, 128, 512, 'hardswish'), (37, 64, 48, 'none'),
                          (16, 1024, 16, 'none'), (300, 32, 256, 'none')])
@pytest.mark.parametrize('with_residual', [False, True])
def test_amx_linear_matches_float32(rows, features, outputs, act,
                                    with_residual):
    """Partial token blocks, output groups narrower than the 64 outputs of
    a block, Hardswish and the residual; as close to the float32 result as
    oneDNN's bf16 linear layer."""
    from interformer.models.utils.amx_linear import AmxLinear
    from interformer.models.utils.fused_ops import LinearParams, linear
    torch.manual_seed(rows)
    weight = torch.randn(outputs, features) / features**0.5
    bias = torch.randn(outputs)
    x = torch.randn(1, rows, features).bfloat16()
    residual = torch.randn(1, rows, outputs).bfloat16() \
        if with_residual else None
    layer = AmxLinear(weight, bias, torch.bfloat16, act)
    if layer._kernel is None:
        pytest.skip('no native kernels')
    got = layer(x, residual)
    if got is None:
        pytest.skip('no AMX-BF16 on this CPU')
    assert got.shape == (1, rows, outputs) and got.dtype == torch.bfloat16
    expected = x.float() @ weight.bfloat16().float().t() + bias
    onednn = linear(x, LinearParams.from_tensors(weight, bias,
                                                 torch.bfloat16, act=act))
    if act == 'hardswish':
        expected = F.hardswish(expected)
    if residual is not None:
        expected = expected + residual.float()
        onednn = onednn + residual
    budget = (onednn.float() - expected).abs().max().item()
    error = (got.float() - expected).abs().max().item()
    assert error <= max(1.5 * budget, 0.02), (error, budget)


def test_amx_linear_declines_what_it_does_not_take():
    from interformer.models.utils.amx_linear import AmxLinear
    weight, x = torch.randn(32, 48), torch.randn(5, 48)
    # 48 input features: not a multiple of the 32-feature tile chunk
    assert AmxLinear(weight, None, torch.bfloat16)(x.bfloat16()) is None
    # float32 keeps oneDNN
    square = torch.randn(32, 32)
    assert AmxLinear(square, None, torch.float32)(torch.randn(5, 32)) is None
    layer = AmxLinear(square, None, torch.bfloat16)
    with native.suspended():
        assert layer(torch.randn(5, 32).bfloat16()) is None
