"""Run benchmark jobs (one process per model and size) and report them.

Each (model, image size) job runs in a fresh spawned process so that its
peak memory is its own and no cache of another job is warm; within a job
the paths share the model. :func:`format_table` prints the records,
:func:`write_json` stores them.
"""
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Callable, List, Optional, Sequence, Tuple

from .run import BenchmarkSettings, run_job

__all__ = [
    'DEFAULT_SIZES', 'DEFAULT_MODELS', 'DEFAULT_PATHS', 'run_benchmark',
    'format_table', 'format_markdown', 'write_json', 'parse_size'
]

DEFAULT_MODELS = ('light', 'tiny')
DEFAULT_SIZES = ((352, 512), (480, 640), (768, 1024))
DEFAULT_PATHS = ('reference', 'fast', 'bf16')
#: Keys every record carries (the documented JSON format).
RECORD_KEYS = ('model', 'image_size', 'path', 'encoder_s', 'click_ms_median',
               'click_ms_p90', 'robot_ms_median', 'click_gflops',
               'gemm_fp32_gflops', 'gemm_bf16_gflops', 'max_abs_diff',
               'threads')


def parse_size(text: str) -> Tuple[int, int]:
    """``'352x512'`` -> (352, 512) (height x width)."""
    parts = text.lower().split('x')
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f'image size must look like HxW (e.g. 352x512), '
                         f'got {text!r}') from None
    if height < 32 or width < 32:
        raise ValueError(f'image size must be at least 32x32, got {text!r}')
    return height, width


def _run_job_in_process(model: str, size: Sequence[int], paths: Sequence[str],
                        settings: dict) -> List[dict]:
    # module-level so a spawned process can import it
    return run_job(model, size, paths, BenchmarkSettings(**settings))


def run_benchmark(
        models: Sequence[str] = DEFAULT_MODELS,
        sizes: Sequence[Sequence[int]] = DEFAULT_SIZES,
        paths: Sequence[str] = DEFAULT_PATHS,
        settings: Optional[BenchmarkSettings] = None,
        subprocess: bool = True,
        progress: Optional[Callable[[List[dict]], None]] = None) -> List[dict]:
    """Benchmark every model at every size.

    Args:
        models: names from :data:`~.scenario.MODEL_CONFIGS`.
        sizes: (H, W) image sizes (multiples of 32 avoid padding).
        paths: from :data:`~.run.PATH_SETTINGS`.
        settings: see :class:`BenchmarkSettings`.
        subprocess: one spawned process per job (peak memory per job);
            False runs in this process (tests).
        progress: called with each job's records as they finish.

    Returns:
        list[dict]: the records, in job order.
    """
    settings = settings or BenchmarkSettings()
    records = []
    for model in models:
        for size in sizes:
            if subprocess:
                context = multiprocessing.get_context('spawn')
                env_threads = settings.threads
                if env_threads is not None:
                    os.environ['OMP_NUM_THREADS'] = str(env_threads)
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    job = pool.submit(_run_job_in_process, model, tuple(size),
                                      tuple(paths), asdict(settings))
                    found = job.result()
            else:
                found = run_job(model, size, paths, settings)
            records.extend(found)
            if progress is not None:
                progress(found)
    return records


def _fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def format_table(records: Sequence[dict]) -> str:
    """A plain-text table of the records (one line per path).

    ``cpu`` columns are the process CPU time (equal to the wall time on one
    thread unless other processes compete for the core).
    """
    header = ('model', 'size', 'path', 'enc s', 'cpu', 'enc x', 'click ms',
              'p90', 'cpu', 'click x', '/fast', 'robot ms', 'GF/click', 'GF/s',
              '%gemm', '%dnnl', 'max|dlogit|', 'peak MB', 'thr')
    rows = []
    for r in records:
        size = 'x'.join(str(s) for s in r['image_size'])
        rows.append((
            r['model'], size, r['path'],
            _fmt(r['encoder_s'], '.2f'),
            _fmt(r.get('encoder_cpu_s'), '.2f'),
            _fmt(r.get('speedup_encoder'), '.2f'),
            _fmt(r['click_ms_median'], '.1f'),
            _fmt(r['click_ms_p90'], '.1f'),
            _fmt(r.get('click_cpu_ms_median'), '.1f'),
            _fmt(r.get('speedup_click'), '.2f'),
            _fmt(r.get('click_vs_fast'), '.2f'),
            _fmt(r['robot_ms_median'], '.2f'),
            _fmt(r['click_gflops'], '.2f'),
            _fmt(r.get('click_gflops_per_s'), '.0f'),
            _fmt(100 * r['click_frac_gemm'], '.0f'),
            _fmt(100 * r['click_frac_onednn'], '.0f'),
            _fmt(r['max_abs_diff'], '.1e'),
            _fmt(r.get('peak_rss_mb'), '.0f'),
            str(r['threads']),
        ))
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    lines = ['  '.join(h.rjust(w) for h, w in zip(header, widths))]
    lines += [
        '  '.join(c.rjust(w) for c, w in zip(row, widths)) for row in rows
    ]
    ceilings = {(r['gemm_fp32_gflops'], r['gemm_bf16_gflops'],
                 r['gemm_fp32_onednn_gflops'], r['gemm_bf16_onednn_gflops'])
                for r in records}
    for fp32, bf16, fp32_dnnl, bf16_dnnl in sorted(ceilings):
        lines.append(f'GEMM ceiling (GFLOP/s): torch.mm fp32 {fp32:.0f}, '
                     f'bf16 {bf16:.0f}; oneDNN fp32 {fp32_dnnl:.0f}, '
                     f'bf16 {bf16_dnnl:.0f}')
    loads = [r['load_avg'] for r in records if r.get('load_avg')]
    if loads:
        values = [v for pair in loads for v in pair if v is not None]
        if values:
            lines.append(f'load average during the run: '
                         f'{min(values):.1f}-{max(values):.1f}')
    return '\n'.join(lines)


def format_markdown(records: Sequence[dict]) -> str:
    """The main columns as a Markdown table (for the README)."""
    header = ('model', 'image', 'path', 'encoder s', 'click ms (median / '
              'p90)', 'robot ms', 'GFLOP/click', 'GFLOP/s (% GEMM / % '
              'oneDNN)', 'speed-up enc / click', 'max abs logit diff')
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    for r in records:
        size = 'x'.join(str(s) for s in r['image_size'])
        speed = (f"{_fmt(r.get('speedup_encoder'), '.2f')} / "
                 f"{_fmt(r.get('speedup_click'), '.2f')}")
        rate = (f"{r['click_gflops_per_s']:.0f} "
                f"({100 * r['click_frac_gemm']:.0f} / "
                f"{100 * r['click_frac_onednn']:.0f})")
        cells = (r['model'], size, r['path'], f"{r['encoder_s']:.2f}",
                 f"{r['click_ms_median']:.1f} / {r['click_ms_p90']:.1f}",
                 f"{r['robot_ms_median']:.1f}", f"{r['click_gflops']:.2f}",
                 rate, speed, f"{r['max_abs_diff']:.1e}")
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_json(records: Sequence[dict], path: str) -> None:
    """Write the records as a JSON list (atomic replace)."""
    for record in records:
        missing = [k for k in RECORD_KEYS if k not in record]
        if missing:
            raise ValueError(f'benchmark record lacks {missing}')
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(list(records), f, indent=1)
    os.replace(tmp, path)
