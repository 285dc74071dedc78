"""CPUAmpOptimWrapper: bfloat16 autocast on CPU, a normal step otherwise."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

import interformer  # noqa: F401
from interformer.engine import CPUAmpOptimWrapper


def _wrapper(dtype='bfloat16'):
    model = nn.Linear(4, 2)
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(
            model,
            dict(
                type='CPUAmpOptimWrapper',
                dtype=dtype,
                optimizer=dict(type='SGD', lr=0.1)))
    return model, wrapper


def test_autocasts_to_bfloat16_and_steps():
    model, wrapper = _wrapper()
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    x = torch.randn(3, 4)
    with wrapper.optim_context(model):
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert model(x).dtype == torch.float32  # only inside the context
    before = model.weight.detach().clone()
    wrapper.update_params(out.float().pow(2).mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(before, model.weight)


def test_float32_disables_autocast_and_bad_dtype_raises():
    model, wrapper = _wrapper('float32')
    with wrapper.optim_context(model):
        assert model(torch.randn(1, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match='dtype'):
        _wrapper('float16')
