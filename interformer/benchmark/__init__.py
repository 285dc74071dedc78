"""CPU benchmark of InterFormer (``tools/benchmark.py``).

* :mod:`.measure`: timing, FLOP counting, the machine's GEMM ceiling;
* :mod:`.scenario`: the full-size models (random weights) and a real
  object mask at any image size;
* :mod:`.run`: one model and size, every path (``reference``, ``fast``,
  ``bf16``): encoder, per-click step, robot user, FLOPs, logit difference;
* :mod:`.suite`: jobs in fresh processes, the table, the JSON records;
* :mod:`.precision`: bf16 against fp32 on a click test (mask IoU, NoC).
"""
from .measure import (
                      TimingStats,
                      count_flops,
                      gemm_gflops,
                      load_average,
                      onednn_gemm_gflops,
                      peak_rss_mb,
                      summarize_times,
                      time_calls,
)
from .precision import compare_precisions
from .run import PATH_SETTINGS, BenchmarkSettings, measure_path, run_job
from .scenario import MODEL_CONFIGS, benchmark_sample, build_benchmark_model
from .suite import format_table, parse_size, run_benchmark, write_json

__all__ = [
    'TimingStats', 'count_flops', 'gemm_gflops', 'onednn_gemm_gflops',
    'load_average', 'peak_rss_mb', 'summarize_times', 'time_calls',
    'compare_precisions', 'PATH_SETTINGS', 'BenchmarkSettings', 'measure_path',
    'run_job', 'MODEL_CONFIGS', 'benchmark_sample', 'build_benchmark_model',
    'format_table', 'parse_size', 'run_benchmark', 'write_json'
]
