"""Run the training benchmark and report it (``tools/benchmark_train.py``).

The JSON record (:func:`run_train_benchmark`) has the keys ``device``,
``config``, ``batch``, ``iter_ms`` (median of the plain iterations),
``images_per_s``, ``peak_mem_mb`` (CUDA: peak allocated; CPU: peak RSS of
the process), ``flop_floor_ms`` and ``phases_ms`` (median ms per iteration
of each phase of :data:`~.train_phases.PHASES`), plus ``phases_mean_ms``,
``iter_ms_all``, the matmul rate and the machine.
"""
import json
import os
import os.path as osp
import platform
import tempfile
from dataclasses import asdict

import torch
from mmengine.runner import Runner

from .train_phases import PHASES
from .train_step import TrainBenchSettings, prepare_config

__all__ = [
    'run_train_benchmark', 'format_train_table', 'write_record',
    'check_device'
]


def check_device(device: str) -> None:
    """One clear error when the requested device is not usable."""
    if device not in ('cpu', 'cuda'):
        raise ValueError(f'--device must be cpu or cuda, got {device!r}')
    if device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'--device cuda: no CUDA device is available '
                           f'(torch {torch.__version__}, CUDA build '
                           f'{torch.version.cuda})')
    if device == 'cpu' and torch.cuda.is_available():
        raise RuntimeError('--device cpu: CUDA is visible; run with '
                           'CUDA_VISIBLE_DEVICES= (tools/benchmark_train.py '
                           'does this)')


def _device_name(device: str) -> str:
    if device == 'cuda':
        return torch.cuda.get_device_name(0)
    return f'{platform.processor() or platform.machine()} ' \
           f'({torch.get_num_threads()} threads)'


def run_train_benchmark(settings: TrainBenchSettings,
                        work_dir: str = None) -> dict:
    """Build the config's training through the Runner and time it.

    Returns:
        dict: the JSON record (see the module docstring).
    """
    check_device(settings.device)
    with tempfile.TemporaryDirectory(prefix='benchmark_train_') as tmp:
        cfg = prepare_config(settings, work_dir or tmp)
        runner = Runner.from_cfg(cfg)
        runner.train()
        result = runner.train_loop.result
        batch = cfg.train_dataloader.batch_size
    record = dict(
        device=settings.device,
        device_name=_device_name(settings.device),
        config=settings.config,
        batch=batch,
        amp=(settings.amp_dtype or ('float16' if settings.device == 'cuda'
                                    else 'bfloat16')) if settings.amp
        else None,
        compile=settings.compile,
        torch=torch.__version__,
        iters=settings.iters,
        images_per_s=batch / result['iter_ms'] * 1e3,
        flop_floor_ms=result.get('flop_floor_ms'),
        cfg_options=settings.cfg_options,
    )
    record.update(result)
    record['phases_ms'] = {p: record['phases_ms'][p] for p in PHASES}
    return record


def format_train_table(record: dict) -> str:
    """Phase table (median and mean ms per iteration, share) + summary."""
    phases, means = record['phases_ms'], record['phases_mean_ms']
    total = sum(phases.values())
    lines = [
        f'{record["config"]} on {record["device"]} '
        f'({record["device_name"]}), batch {record["batch"]}, '
        f'amp {record["amp"] or "off"}, {record["iters"]} timed iterations',
        f'{"phase":<12}{"median ms":>11}{"mean ms":>10}{"share":>8}'
    ]
    for name in PHASES:
        share = phases[name] / total if total else 0.0
        lines.append(f'{name:<12}{phases[name]:>11.1f}{means[name]:>10.1f}'
                     f'{share:>8.1%}')
    lines.append(f'{"sum":<12}{total:>11.1f}')
    lines.append(f'iteration (plain, median): {record["iter_ms"]:.1f} ms, '
                 f'{record["images_per_s"]:.2f} images/s, peak memory '
                 f'{record["peak_mem_mb"]:.0f} MB')
    if record.get('flop_floor_ms') is not None:
        lines.append(
            f'FLOP floor: {record["flops_per_iter"] / 1e9:.0f} GFLOP per '
            f'iteration at {record["matmul_gflops"]:.0f} GFLOP/s '
            f'({record["matmul_dtype"]} matmul) = '
            f'{record["flop_floor_ms"]:.1f} ms '
            f'(E[n] = {record["expected_sim_clicks"]:.2f} simulated clicks)')
    return '\n'.join(lines)


def write_record(record: dict, path: str) -> None:
    """Write the record as JSON, atomically."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(record, f, indent=2, default=str)
    os.replace(tmp, path)


def settings_dict(settings: TrainBenchSettings) -> dict:
    """The settings as a plain dict (for logs)."""
    return asdict(settings)
