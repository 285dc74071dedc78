"""Benchmark helpers: timing, FLOPs, GEMM ceiling."""
from .measure import (TimingStats, count_flops, gemm_gflops, load_average,
                      onednn_gemm_gflops, peak_rss_mb, summarize_times,
                      time_calls)

__all__ = [
    'TimingStats', 'count_flops', 'gemm_gflops', 'onednn_gemm_gflops',
    'load_average', 'peak_rss_mb', 'summarize_times', 'time_calls'
]
