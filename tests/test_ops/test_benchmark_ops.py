"""The per-op A/B (interformer.ops.benchmark, tools/benchmark_ops.py) on
the debug model: calls recorded from a real click, a table per op."""
import pytest
import torch

from interformer.ops import benchmark, library


@pytest.fixture(scope='module')
def calls():
    return benchmark.record_click_calls('debug', 'fp32', (64, 96))


def test_a_click_records_the_decoder_op_calls(calls):
    names = {name for name, _ in calls}
    assert 'pyramid_tokens' in names and 'bilinear_resize' in names
    for name, args in calls:
        assert name in benchmark.REFERENCE_ROUTES
        assert isinstance(args[0], torch.Tensor)


def test_the_table_names_cpu_threads_and_amx(calls):
    rows = benchmark.ab_rows(calls, rounds=2, compile_reference=False)
    assert {r['op'] for r in rows} == {name for name, _ in calls}
    for r in rows:
        assert r['eager_ms'] > 0 and r['compiled_ms'] is None
        if r['why_not'] is None:
            assert r['native_ms'] > 0 and r['ratio'] > 0
            assert r['keep'] == (r['ratio'] >= benchmark.KEEP_RATIO)
    table = benchmark.format_ab_table(rows, 2)
    assert library.cpu_model() in table and 'threads: 2' in table
    assert 'AMX-BF16: ' in table
    assert table.count('\n| ') == len(rows) + 1
