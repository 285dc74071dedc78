"""The ``onnx`` path of tools/benchmark.py: the exported decoder in
onnxruntime on the same clicks, next to ``fast``, with the ratio."""
import torch

from interformer.benchmark import BenchmarkSettings, run_job
from interformer.benchmark.suite import format_table


def test_onnx_path_next_to_fast():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = BenchmarkSettings(clicks=4, warmup_clicks=1,
                                     encoder_repeats=1)
        records = run_job('debug', (96, 128), ('fast', 'onnx'), settings)
    finally:
        torch.set_num_threads(threads)
    fast, onnx = records
    assert (fast['path'], onnx['path']) == ('fast', 'onnx')
    assert onnx['num_clicks'] == 4 and onnx['click_ms_median'] > 0
    assert onnx['click_vs_fast'] == (onnx['click_ms_median'] /
                                     fast['click_ms_median'])
    # same logits as the reference path on its own reference labels
    assert onnx['max_abs_diff'] < 1e-3
    assert 'onnx' in format_table(records)
