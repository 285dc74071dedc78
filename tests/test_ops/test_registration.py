"""The kernels as PyTorch custom ops: torch.library.opcheck (schema, fake
implementation, mutation), FakeTensor shapes, clear errors before any C
code runs, the dispatcher's reasons and torch's FLOP counter."""
import os
import shutil

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from interformer import ops

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get('CC', 'cc')) is None,
    reason='no C compiler')


def _map(channels, height, width, dtype=torch.float32):
    return torch.randn(1, channels, height, width, dtype=dtype).contiguous(
        memory_format=torch.channels_last)


def _cases():
    """(op name, op, args) with small, valid arguments for each kernel."""
    torch.manual_seed(0)
    x = _map(32, 11, 16)
    sizes = [1, 1, 2, 3, 4, 5]
    tokens = (x, torch.rand(32), torch.rand(32), 1e-5, True, sizes,
              torch.randn(3, 9, 32), torch.randn(3, 32), torch.rand(32) + .5,
              torch.randn(32), 1e-6, 32)
    query = torch.randn(1, 40, 64).bfloat16()
    key = torch.randn(1, 2, 48, 32).bfloat16()
    packed = ops.pack_linear_weight(torch.randn(48, 64))
    interformer = torch.ops.interformer
    return [
        ('bilinear_resize', interformer.bilinear_resize_,
         (x, _map(32, 22, 32), True)),
        ('pyramid_tokens', interformer.pyramid_tokens, tokens),
        ('attention_bf16', interformer.attention_bf16,
         (query, key, key.clone(), 40, 0.18)),
        ('attention_f32', interformer.attention_f32,
         (query.float(), key.float(), key.float(), 40, 0.18)),
        ('linear_bf16', interformer.linear_bf16,
         (torch.randn(20, 64).bfloat16(), packed, torch.randn(48), 1,
          torch.randn(20, 48).bfloat16())),
    ]


CASES = {name: (op, args) for name, op, args in _cases()}


def test_every_declared_op_is_a_registered_custom_op():
    assert set(CASES) == set(ops.declared())
    for op, _ in CASES.values():
        assert isinstance(op, torch._ops.OpOverloadPacket)


@needs_compiler
@pytest.mark.parametrize('name', sorted(CASES))
def test_opcheck(name):
    op, args = CASES[name]
    reason = ops.why_not(name, *args)
    if reason is not None:
        assert 'BF16' in reason  # AMX / AVX512-BF16: the only reasons
        pytest.skip(reason)
    torch.library.opcheck(op, args)


@pytest.mark.parametrize('name', sorted(CASES))
def test_fake_tensors_need_no_kernel(name):
    """Shapes from the fake implementation (torch.compile / meta), also on
    CPUs where the kernel cannot run."""
    op, args = CASES[name]
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fake = [
            mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
            for a in args
        ]
        out = op(*fake)
    expected = {
        'bilinear_resize': None,
        'pyramid_tokens': (32, 32),
        'attention_bf16': (1, 40, 64),
        'attention_f32': (1, 40, 64),
        'linear_bf16': (20, 48),
    }[name]
    assert (None if out is None else tuple(out.shape)) == expected


@pytest.mark.parametrize(
    'name,bad,match',
    [('pyramid_tokens', lambda a: (a[0].contiguous(), ) + a[1:],
      'x: not a channels-last contiguous map'),
     ('bilinear_resize', lambda a: (a[0].half(), ) + a[1:],
      'dtype float16'),
     ('pyramid_tokens', lambda a: (a[0], torch.rand(31)) + a[2:],
      'gn_weight: 31 elements, expected 32'),
     ('bilinear_resize', lambda a: (a[0], _map(16, 22, 32), True),
      'dst: 16 channels, src has 32'),
     ('bilinear_resize', lambda a: (a[0], a[1].bfloat16(), True),
      'dst: dtype bfloat16, expected float32'),
     ('bilinear_resize', lambda a: (a[0][:, :, :, :0], ) + a[1:],
      r'src: empty map \(1, 32, 11, 0\)'),
     ('pyramid_tokens', lambda a: a[:-1] + (20, ), 'rows: 20 < 27 tokens'),
     ('pyramid_tokens', lambda a: a[:6] + (torch.randn(2, 9, 32), ) + a[7:],
      'dw_weight: 576 elements, expected 864'),
     ('pyramid_tokens', lambda a: (_map(2048, 2, 2), ) + a[1:],
      'at most 1024'),
     ('attention_bf16', lambda a: a[:3] + (49, a[4]),
      r'num_keys 49 not in \[1, 48\]'),
     ('attention_bf16', lambda a: (a[0][..., :32], ) + a[1:],
      'query: 32 channels, expected 2 heads x 32'),
     ('linear_bf16', lambda a: a[:4] + (torch.randn(19, 48).bfloat16(), ),
      'residual: 19 rows, x has 20')])
def test_bad_arguments_raise_before_any_c_code(name, bad, match):
    op, args = CASES[name]
    with pytest.raises(ValueError, match=f'interformer::{name}.*{match}'):
        op(*bad(args))
    assert match.replace('\\', '') in ops.explain(name, *bad(args)) or \
        ops.why_not(name, *args) is not None  # platform reason first


def test_ops_say_which_cpu_feature_is_missing():
    """Every op needing a feature this CPU lacks (AMX-BF16 for the linear
    kernel, AVX512-BF16 for the attention) names it and the CPU model."""
    from interformer.ops import library
    from interformer.ops.dispatch import FEATURE_NAMES
    for name, support in ops.declared().items():
        missing = [f for f in support.cpu_features
                   if f not in library.cpu_flags()]
        if not missing:
            continue
        reason = ops.why_not(name, *CASES[name][1])
        assert reason is not None
        assert f'no {FEATURE_NAMES[missing[0]]} on this CPU' in reason
        assert library.cpu_model() in reason
        assert ops.explain(name, *CASES[name][1]) == f'pytorch: {reason}'


def test_declined_routes_are_logged_once_at_debug(caplog):
    args = CASES['bilinear_resize'][1]
    half = (args[0].half(), ) + args[1:]
    with caplog.at_level('DEBUG', logger='interformer.ops.dispatch'):
        for _ in range(3):
            assert not ops.use_native('bilinear_resize', *half)
    lines = [
        r for r in caplog.records if 'bilinear_resize' in r.getMessage()
    ]
    assert len(lines) <= 1  # once per process (maybe logged before)
    with pytest.raises(KeyError, match='no op named'):
        ops.why_not('conv3d', *args)


@needs_compiler
def test_the_flop_counter_sees_the_ops():
    counted = {}
    for name in ('pyramid_tokens', 'attention_bf16', 'attention_f32',
                 'linear_bf16'):
        op, args = CASES[name]
        if ops.why_not(name, *args) is not None:
            continue
        with FlopCounterMode(display=False) as counter:
            op(*args)
        counted[name] = counter.get_total_flops()
    assert counted.get('pyramid_tokens') == 2 * 9 * 32 * (1 + 6 + 20)
    for name in ('attention_bf16', 'attention_f32'):
        if name in counted:
            assert counted[name] == 2 * 2 * 2 * 40 * 48 * 32
    if 'linear_bf16' in counted:
        assert counted['linear_bf16'] == 2 * 20 * 64 * 48


@needs_compiler
def test_the_profiler_and_torch_compile_see_the_ops():
    op, args = CASES['pyramid_tokens']
    with torch.profiler.profile(activities=[
            torch.profiler.ProfilerActivity.CPU
    ]) as prof:
        expected = op(*args)
    names = {event.name for event in prof.events()}
    assert 'interformer::pyramid_tokens' in names

    def tokens(x):  # dynamo traces the op through its fake implementation
        return op(x, *args[1:]) * 2

    compiled = torch.compile(tokens, backend='eager', fullgraph=True)
    torch.testing.assert_close(compiled(args[0]), expected * 2)
