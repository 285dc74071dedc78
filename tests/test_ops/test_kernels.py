"""Each native kernel (interformer.ops) against its PyTorch route and the
modules it stands for: float32 to rounding, bfloat16 within one rounding
step of the float32 result."""
import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from interformer import ops
from interformer.models.necks.imsa import PoolingAttention
from interformer.models.necks.imsa.pooled_kv import PyramidKeyValue
from interformer.models.utils.fused_ops import channels_last, norm_params

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get('CC', 'cc')) is None,
    reason='no C compiler')


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
    assert fast._native
    out = fast(channels_last(x), norm_params(norm) if with_norm else None)
    key, value = _expected(attn, norm, x)
    torch.testing.assert_close(out.key, key, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out.value, value, atol=2e-5, rtol=1e-5)


def test_native_tokens_bf16_match_the_torch_route():
    """The C kernel against the fast path's PyTorch route (grouped conv)."""
    attn = _attention(64, seed=2)
    norm = _group_norm(64, seed=3)
    x = channels_last((torch.randn(1, 64, 22, 32) + 3).bfloat16())
    native_route = PyramidKeyValue(attn, torch.bfloat16)
    torch_route = PyramidKeyValue(attn, torch.bfloat16)
    torch_route._native = False
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


def test_native_tokens_equal_the_reference_route():
    """The op against its PyTorch reference (any padding rows)."""
    attn = _attention(32, seed=4)
    norm = _group_norm(32, seed=5)
    fast = PyramidKeyValue(attn, torch.float32)
    x = channels_last(torch.randn(1, 32, 11, 16) + 1)
    grid = fast._grid(11, 16)
    for rows in (grid.total, grid.total + 5):
        args = ops.pyramid_tokens_args(x, norm_params(norm), grid.flat_sizes,
                                       fast._dw_weight, fast._dw_bias,
                                       fast.norm, rows)
        assert ops.explain('pyramid_tokens', *args) == 'native'
        got = torch.ops.interformer.pyramid_tokens(*args)
        torch.testing.assert_close(got, ops.pyramid_tokens_reference(*args),
                                   atol=2e-5, rtol=1e-5)


def test_unsupported_blocks_keep_the_torch_route():
    attn = _attention(32)
    for level in range(len(attn.dconvs)):
        attn.dconvs[level] = torch.nn.Conv2d(32, 32, 5, padding=2, groups=32)
    fast = PyramidKeyValue(attn, torch.float32)
    assert not fast._native
    x = torch.randn(1, 32, 8, 12)
    with torch.no_grad():
        key, _ = attn.key_value(F.group_norm(x, 1))
    out = fast(channels_last(x), (None, None, 1e-5))
    torch.testing.assert_close(out.key, key, atol=1e-5, rtol=0)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('src,dst', [((11, 16), (22, 32)),
                                     ((11, 16), (88, 128)),
                                     ((6, 6), (11, 16)), ((1, 1), (5, 7)),
                                     ((20, 30), (7, 9))])
@pytest.mark.parametrize('channels', [64, 24])
def test_native_resize_equals_interpolate(dtype, src, dst, channels):
    x = channels_last(torch.randn(1, channels, *src).to(dtype))
    got = torch.empty((1, channels) + dst, dtype=dtype,
                      memory_format=torch.channels_last)
    reason = ops.why_not('bilinear_resize', x, got, False)
    assert reason is None or 'PyTorch is faster' in reason
    expected = F.interpolate(
        x.float(), size=dst, mode='bilinear', align_corners=False)
    torch.ops.interformer.bilinear_resize_(x, got, False)  # the kernel
    assert got.dtype == dtype and got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    else:  # one rounding of the float32 result (at most one bf16 step)
        torch.testing.assert_close(got.float(), expected, atol=1e-6,
                                   rtol=2**-7)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_native_resize_into_a_channel_slice_and_accumulating(dtype):
    x = channels_last(torch.randn(1, 32, 11, 16).to(dtype))
    wide = channels_last(torch.full((1, 96, 44, 64), 7.0, dtype=dtype))
    assert ops.explain('bilinear_resize', x, wide[:, 32:64],
                       False) == 'native'
    assert 'PyTorch is faster' in ops.explain('bilinear_resize', x,
                                              wide[:, 32:64, :4, :4], False)
    ops.resize(x, (44, 64), out=wide[:, 32:64])
    expected = F.interpolate(
        x.float(), size=(44, 64), mode='bilinear', align_corners=False)
    tol = dict(atol=1e-6, rtol=1e-6) if dtype == torch.float32 else dict(
        atol=1e-6, rtol=2**-7)
    torch.testing.assert_close(wide[:, 32:64].float(), expected.to(
        dtype).float(), **tol)
    assert (wide[:, :32] == 7).all() and (wide[:, 64:] == 7).all()
    base = channels_last(torch.randn(1, 32, 44, 64).to(dtype))
    summed = base.clone()
    ops.resize(x, (44, 64), out=summed, accumulate=True)
    torch.testing.assert_close(
        summed.float(), (base.float() + expected).to(dtype).float(),
        **tol)


def _attention_inputs(heads, queries, keys):
    torch.manual_seed(heads)
    channels = heads * 32
    query = torch.randn(1, queries, channels).bfloat16()
    key = torch.randn(1, heads, keys, 32).bfloat16()
    value = torch.randn(1, heads, keys, 32).bfloat16()
    return query, key, value


@pytest.mark.parametrize('heads,queries,keys,valid',
                         [(1, 512, 256, 250), (2, 37, 48, 48), (2, 9, 48, 47),
                          (3, 19, 40, 33), (1, 18, 300, 290),
                          (4, 100, 272, 260), (8, 16, 16, 1)])
def test_native_attention_matches_float32_attention(heads, queries, keys,
                                                    valid):
    """The native kernel (AMX tiles, or AVX512-BF16 dot products without
    AMX) against float32 attention on the same bf16 inputs:
    as close as PyTorch's own bf16 kernel (P and the output are rounded to
    bf16 in both). Partial query blocks, key counts that are not a multiple
    of the 32-key chunk and masked keys included."""
    query, key, value = _attention_inputs(heads, queries, keys)
    scale = 32**-0.5
    args = (query, key, value, valid, scale)
    reason = ops.why_not('attention_bf16', *args)
    if reason is not None:
        assert 'BF16' in reason
        pytest.skip(reason)
    out = torch.ops.interformer.attention_bf16(*args)
    expected = ops.attention_reference(query.float(), key.float(),
                                       value.float(), valid, scale)
    pytorch_bf16 = ops.attention_reference(*args)
    budget = (pytorch_bf16.float() - expected).abs().max().item()
    error = (out.float() - expected).abs().max().item()
    assert error <= 1.5 * budget + 1e-3, (error, budget)


@pytest.mark.parametrize('heads,queries,keys,valid',
                         [(1, 512, 256, 250), (2, 37, 48, 48), (3, 19, 40, 33),
                          (1, 18, 300, 290), (8, 16, 16, 1)])
def test_native_float32_attention_matches_sdpa(heads, queries, keys, valid):
    """The float32 kernel (AVX-512F) against PyTorch's float32 SDPA on the
    same inputs: within 1e-5 (the fp32 route's parity budget is 1e-4 on
    the logits). Partial blocks and 4-query groups, masked keys."""
    query, key, value = (t.float() for t in
                         _attention_inputs(heads, queries, keys))
    args = (query, key, value, valid, 32**-0.5)
    reason = ops.why_not('attention_f32', *args)
    if reason is not None:
        assert 'AVX-512' in reason
        pytest.skip(reason)
    out = torch.ops.interformer.attention_f32(*args)
    expected = ops.attention_reference(*args)
    assert out.dtype == torch.float32 and out.shape == query.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert ops.attention(*args).data_ptr() != expected.data_ptr()


def test_attention_declares_what_it_does_not_take():
    query, key, value = _attention_inputs(2, 16, 16)
    wide = torch.randn(1, 1, 16, 64).bfloat16()
    reasons = {
        'head dims': ops.why_not('attention_bf16', query[..., :64], wide,
                                 wide, 16, 0.125),
        'scale': ops.why_not('attention_bf16', query, key, value, 16, -1.0),
        'num_keys': ops.why_not('attention_bf16', query, key, value, 17,
                                0.1),
        'float32': ops.why_not('attention_bf16', query.float(),
                               key.float(), value.float(), 16, 0.1),
    }
    for name, reason in reasons.items():
        assert reason, name
    if ops.why_not('attention_bf16', query, key, value, 16, 0.1) is None:
        # on AMX CPUs the platform is fine: the reasons are the arguments
        assert '64' in reasons['head dims'] and 'scale' in reasons['scale']
        assert 'num_keys' in reasons['num_keys']
        assert 'float32' in reasons['float32']


def test_fast_block_bf16_attention_routes_agree():
    """A bf16 I-MSA block with the AMX attention and with PyTorch's SDPA."""
    from interformer.models.necks.imsa.blocks import PoolingBlock
    torch.manual_seed(7)
    block = PoolingBlock(64, 2, 4, (1, 2, 3, 4), (8., 12.)).eval()
    block.switch_to_deploy(torch.bfloat16)
    query, key, value = _attention_inputs(2, 16, 16)
    reason = ops.why_not('attention_bf16', query, key, value, 16, 0.1)
    if reason is not None:
        pytest.skip(reason)
    x = channels_last(torch.randn(1, 64, 12, 17).bfloat16())
    with torch.inference_mode():
        got = block(x)
        block._deploy_state.attention = False
        reference = block(x)
    assert got.shape == reference.shape and torch.isfinite(got.float()).all()
    error = (got.float() - reference.float()).abs()
    assert error.max() < 0.1 and error.mean() < 0.01


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
    packed = ops.pack_linear_weight(weight)
    torch.testing.assert_close(ops.unpack_linear_weight(packed),
                               weight.bfloat16(), atol=0, rtol=0)
    res_rows = None if residual is None else residual[0]
    reason = ops.why_not('linear_bf16', x[0], packed, bias,
                         ops.linear.ACTIVATIONS[act], res_rows)
    if reason is not None:
        assert 'AMX-BF16' in reason
        assert AmxLinear(weight, bias, torch.bfloat16, act)(x,
                                                           residual) is None
        pytest.skip(reason)
    got = AmxLinear(weight, bias, torch.bfloat16, act)(x, residual)
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
    packed = ops.pack_linear_weight(square)
    with pytest.raises(ValueError, match=r'\(M, 32\) rows, got \(5, 64\)'):
        torch.ops.interformer.linear_bf16(torch.randn(5, 64).bfloat16(),
                                          packed, None, 0, None)
    with pytest.raises(ValueError, match='multiples'):
        ops.pack_linear_weight(weight)
