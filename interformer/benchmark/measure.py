"""Timing, FLOP counting and the machine's GEMM ceiling.

Every speed figure of :mod:`interformer.benchmark` comes from these helpers:
``time.perf_counter`` around each call after warm-up, summarised by the
median and the 90th percentile; FLOPs from torch's own
``FlopCounterMode``; the ceiling from a large square matrix product in the
same process, so figures can be read as a fraction of what the machine can
do.
"""
import os
import resource
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    'TimingStats', 'summarize_times', 'time_calls', 'count_flops',
    'gemm_gflops', 'onednn_gemm_gflops', 'peak_rss_mb', 'load_average'
]


@dataclass
class TimingStats:
    """Summary of repeated wall-clock timings, in milliseconds."""
    median_ms: float
    p90_ms: float
    mean_ms: float
    count: int


def summarize_times(seconds: Sequence[float]) -> TimingStats:
    """Median / p90 / mean (ms) of a list of durations in seconds."""
    if len(seconds) == 0:
        raise ValueError('no timings to summarise')
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return TimingStats(
        median_ms=float(np.median(ms)),
        p90_ms=float(np.percentile(ms, 90)),
        mean_ms=float(ms.mean()),
        count=int(ms.size))


def time_calls(fn: Callable[[], object],
               repeats: int,
               warmup: int = 2) -> List[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns:
        list[float]: the duration of each timed call in seconds.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` as counted by torch's FlopCounterMode.

    The counter covers matrix products, convolutions and attention (a
    multiply-add is 2 FLOPs), including the fused oneDNN ops of the fast
    path and the native kernels (their formulas are registered with
    torch's counter by :mod:`interformer.ops`); element-wise work is not
    counted.
    """
    from .. import ops  # noqa: F401 (registers the FLOP formulas)
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def gemm_gflops(dtype: torch.dtype = torch.float32,
                size: int = 2048,
                repeats: int = 5) -> float:
    """Sustained GFLOP/s of a ``size``-square matrix product (median)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    with torch.inference_mode():
        times = time_calls(lambda: torch.mm(a, b), repeats, warmup=2)
    return 2 * size**3 / float(np.median(times)) / 1e9


def onednn_gemm_gflops(dtype: torch.dtype = torch.float32,
                       size: int = 2048,
                       repeats: int = 5) -> float:
    """Sustained GFLOP/s of the same product through oneDNN.

    ``torch.mm`` uses MKL, which on AMD CPUs runs float32 on AVX2 only;
    oneDNN (the library of the fast path's layers) uses the full vector
    width, so this is the machine's real float32 ceiling there.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    linear = torch.ops.mkldnn._linear_pointwise
    with torch.inference_mode():
        times = time_calls(
            lambda: linear(a, b, None, 'none', [], ''), repeats, warmup=2)
    return 2 * size**3 / float(np.median(times)) / 1e9


def load_average() -> Optional[float]:
    """1-minute load average of the machine (None where unknown)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
