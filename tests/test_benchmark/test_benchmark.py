"""The benchmark's measuring pieces (correctness only, nothing is timed
against a threshold): FLOP counting of the fused ops, the records, the
table, the JSON file and the command line."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interformer.benchmark import count_flops, summarize_times
from interformer.benchmark.run import BenchmarkSettings, run_job
from interformer.benchmark.scenario import benchmark_sample
from interformer.benchmark.suite import (
    RECORD_KEYS,
    format_table,
    parse_size,
    write_json,
)
from interformer.models.utils.fused_ops import (
    ConvParams,
    LinearParams,
    attention,
    attention_keys,
    conv,
    linear,
    onednn_available,
)

needs_onednn = pytest.mark.skipif(
    not onednn_available(), reason='oneDNN CPU ops unavailable')


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@needs_onednn
def test_fused_ops_count_the_flops_of_the_ops_they_replace():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 10, 12, generator=gen)
    layer = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2)
    params = ConvParams.from_conv(layer, torch.float32, act='relu')
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert count_flops(lambda: conv(x_cl, params)) == count_flops(
            lambda: layer(x)) == 2 * 16 * 10 * 12 * 4 * 9
        torch.testing.assert_close(
            conv(x_cl, params), F.relu(layer(x)), atol=1e-5, rtol=0)
        fc = torch.nn.Linear(12, 5)
        tokens = torch.randn(3, 7, 12, generator=gen)
        lin = LinearParams.from_linear(fc, torch.float32)
        assert count_flops(lambda: linear(tokens, lin)) == count_flops(
            lambda: fc(tokens)) == 2 * 21 * 12 * 5
        # attention: two products of (heads, N, M, d)
        q = torch.randn(2, 9, 4, generator=gen)
        k = torch.randn(2, 6, 4, generator=gen)
        v = torch.randn(2, 6, 4, generator=gen)
        keys = attention_keys(k, v, 0.5)
        assert count_flops(lambda: attention(q, *keys)) == count_flops(
            lambda: F.scaled_dot_product_attention(q[None], k[None], v[None],
                                                   scale=0.5)) == \
            2 * 2 * 9 * 6 * (4 + 4)
        torch.testing.assert_close(
            attention(q, *keys).transpose(0, 1),
            F.scaled_dot_product_attention(q, k, v, scale=0.5),
            atol=1e-5,
            rtol=0)


def test_summary_and_size_parsing():
    stats = summarize_times([0.01] * 9 + [0.11])
    assert stats.median_ms == pytest.approx(10)
    assert stats.p90_ms == pytest.approx(20)
    assert stats.count == 10
    assert parse_size('352x512') == (352, 512)
    with pytest.raises(ValueError, match='HxW'):
        parse_size('352-512')
    with pytest.raises(ValueError, match='32x32'):
        parse_size('16x512')


def test_sample_has_the_requested_size_and_a_real_object(grabcut_root):
    image, gt, name = benchmark_sample((96, 128), grabcut_root)
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8
    assert gt.shape == (96, 128) and set(np.unique(gt)) <= {-1, 0, 1}
    assert 0 < (gt == 1).mean() < 1
    assert name.startswith('GrabCut/')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        benchmark_sample((64, 64), '/nowhere')


@pytest.fixture(scope='module')
def debug_records(grabcut_root):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = BenchmarkSettings(
            clicks=6,
            warmup_clicks=1,
            encoder_repeats=1,
            data_root=grabcut_root)
        return run_job('debug', (96, 128), ('reference', 'fast', 'bf16'),
                       settings)
    finally:
        torch.set_num_threads(threads)


@needs_onednn
def test_job_records_every_path_with_the_documented_keys(debug_records):
    assert [r['path'] for r in debug_records] == ['reference', 'fast', 'bf16']
    for record in debug_records:
        for key in RECORD_KEYS:
            assert key in record, key
        assert record['model'] == 'debug'
        assert record['image_size'] == [96, 128]
        assert record['threads'] == 1
        assert record['num_clicks'] == 6
        assert record['click_ms_p90'] >= record['click_ms_median'] > 0
        assert record['robot_ms_median'] > 0
        assert record['gemm_fp32_gflops'] > 0
        assert record['gemm_bf16_onednn_gflops'] > 0
        assert 0 < record['click_frac_gemm']
    ref, fast, bf16 = debug_records
    assert ref['max_abs_diff'] == 0 and ref['speedup_click'] == 1
    assert fast['max_abs_diff'] <= 1e-4
    assert 1e-4 < bf16['max_abs_diff'] < 1.0
    # the fast path skips the cached key/value side at every click
    assert fast['click_gflops'] < ref['click_gflops']
    # the same graph; bf16 pads the pooled keys to a multiple of 16 for its
    # attention kernel, a little more arithmetic
    assert fast['click_gflops'] <= bf16['click_gflops'] <= 1.02 * fast[
        'click_gflops']
    # and computes it once per image instead
    assert fast['encoder_gflops'] > ref['encoder_gflops']


@needs_onednn
def test_table_and_json(debug_records, tmp_path):
    table = format_table(debug_records)
    assert 'reference' in table and 'bf16' in table
    assert 'GEMM ceiling' in table
    out = tmp_path / 'sub' / 'bench.json'
    write_json(debug_records, str(out))
    loaded = json.loads(out.read_text())
    assert [r['path'] for r in loaded] == ['reference', 'fast', 'bf16']
    broken = [dict(debug_records[0])]
    del broken[0]['encoder_s']
    with pytest.raises(ValueError, match='encoder_s'):
        write_json(broken, str(tmp_path / 'x.json'))


def test_tool_rejects_bad_sizes(repo_root):
    tool = osp.join(repo_root, 'tools', 'benchmark.py')
    proc = subprocess.run([sys.executable, tool, '--sizes', '352by512'],
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert 'HxW' in proc.stderr


@needs_onednn
def test_markdown_table(debug_records):
    from interformer.benchmark.suite import format_markdown
    lines = format_markdown(debug_records).splitlines()
    assert len(lines) == 2 + len(debug_records)
    assert all(line.startswith('|') and line.endswith('|') for line in lines)
    assert '| debug | 96x128 | fast |' in lines[3]
