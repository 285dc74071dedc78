"""The fused oneDNN primitives of the deployed routes against plain
PyTorch."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from interformer.models.utils.fused_ops import (
    MAX_PACKED_SHAPES,
    ConvParams,
    LinearParams,
    conv,
    conv_add,
    linear,
    onednn_available,
    packed_linear_weight,
    packed_weight,
)

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason='oneDNN CPU ops unavailable')


def _channels_last(x):
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('kernel, groups, act', [(1, 1, 'hardswish'),
                                                 (3, 1, 'relu'),
                                                 (3, 16, 'none')])
def test_conv_with_packed_weight_equals_torch(kernel, groups, act):
    torch.manual_seed(0)
    module = nn.Conv2d(16, 32, kernel, padding=kernel // 2, groups=groups)
    params = ConvParams.from_conv(module, torch.float32, act=act)
    x = _channels_last(torch.randn(1, 16, 11, 13))
    with torch.inference_mode():
        out = conv(x, params)
        expected = module(x)
        if act == 'relu':
            expected = F.relu(expected)
        elif act == 'hardswish':
            expected = F.hardswish(expected)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        # the packed weight is reused, not rebuilt, for the same input shape
        first = packed_weight(params, x)
        assert packed_weight(params, x) is first
        assert first.is_mkldnn


def test_conv_add_uses_the_packed_weight_and_adds_the_residual():
    torch.manual_seed(1)
    module = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    params = ConvParams.from_conv(module, torch.float32)
    x = _channels_last(torch.randn(1, 8, 9, 7))
    residual = _channels_last(torch.randn(1, 8, 9, 7))
    with torch.inference_mode():
        out = conv_add(x, residual, params)
        torch.testing.assert_close(out, module(x) + residual, atol=1e-5,
                                   rtol=1e-5)


def test_packed_weights_are_kept_for_a_few_input_shapes_only():
    module = nn.Conv2d(4, 4, 1)
    params = ConvParams.from_conv(module, torch.float32)
    with torch.inference_mode():
        for size in range(4, 4 + MAX_PACKED_SHAPES + 3):
            x = _channels_last(torch.randn(1, 4, size, size))
            torch.testing.assert_close(conv(x, params), module(x), atol=1e-5,
                                       rtol=1e-5)
    assert len(params.packed) == MAX_PACKED_SHAPES
    newest = (1, 4, 3 + MAX_PACKED_SHAPES + 3, 3 + MAX_PACKED_SHAPES + 3)
    assert (newest, torch.float32) in params.packed


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_linear_with_packed_weight_equals_torch(dtype):
    torch.manual_seed(2)
    module = nn.Linear(24, 40)
    params = LinearParams.from_linear(module, dtype, act='gelu')
    x = torch.randn(1, 37, 24)
    with torch.inference_mode():
        out = linear(x.to(dtype), params)
        expected = F.gelu(F.linear(x.to(dtype), module.weight.to(dtype),
                                   module.bias.to(dtype)))
        tol = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(out.float(), expected.float(), atol=tol,
                                   rtol=tol)
        first = packed_linear_weight(params, x.to(dtype))
        assert packed_linear_weight(params, x.to(dtype)) is first
        # another number of rows gets its own packing, same result
        y = torch.randn(5, 24).to(dtype)
        torch.testing.assert_close(
            linear(y, params).float(),
            F.gelu(F.linear(y, module.weight.to(dtype),
                            module.bias.to(dtype))).float(),
            atol=tol, rtol=tol)
    assert len(params.packed) == 2


def test_packing_can_be_switched_off():
    module = nn.Linear(8, 8)
    params = LinearParams.from_linear(module, torch.float32)
    params.packed = None
    x = torch.randn(3, 8)
    assert packed_linear_weight(params, x) is params.weight
    with torch.inference_mode():
        torch.testing.assert_close(linear(x, params), module(x), atol=1e-5,
                                   rtol=1e-5)
