"""Measure the predictor's paths on one model and image size.

For every path (``reference``, ``fast``, ``bf16``) the same scenario runs:

1. the encoder (:meth:`InterFormerPredictor.set_image`): median seconds of
   a few repeats after a warm-up;
2. the click loop a person would live through: the robot user places a
   click ('official' protocol: deepest error point, seeded tie-break) and
   scores the mask (IoU) -- timed apart as ``robot_ms`` -- and the
   predictor answers (``add_click`` + ``predict``: reference-label update,
   neck + head, upsampling, mask, probability) -- ``click_ms``. Objects
   restart after 20 clicks until enough clicks are timed after warm-up;
3. FLOPs of one encoder pass (``set_image``: for the fast paths this
   includes the per-image keys/values of the cross-attention blocks, which
   the reference path recomputes at every click) and of one click (torch's
   FLOP counter, including the fused oneDNN ops), and the largest absolute
   logit difference to the reference path on the reference path's own
   reference labels (teacher-forced, so every path sees the same input).

The machine's ceiling (large GEMMs, fp32 and bf16, through MKL and
oneDNN) is measured in the same process, and every figure is also given as
a fraction of it.
"""
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..evaluation.metrics import iou
from ..interaction import next_click
from .measure import (
    count_flops,
    gemm_gflops,
    load_average,
    onednn_gemm_gflops,
    peak_rss_mb,
    summarize_times,
)

__all__ = [
    'PATH_SETTINGS', 'BenchmarkSettings', 'measure_ceiling', 'measure_path',
    'run_job'
]

#: Benchmark path -> InterFormerPredictor arguments.
PATH_SETTINGS = {
    'reference': dict(path='reference', precision='fp32'),
    'fast': dict(path='fast', precision='fp32'),
    'bf16': dict(path='fast', precision='bf16'),
    # the model exported to ONNX, run by onnxruntime (interformer.deploy)
    'onnx': dict(path='onnx', precision='fp32'),
}
MAX_CLICKS_PER_OBJECT = 20
#: Reference labels compared between paths (teacher-forced).
NUM_DIFF_LABELS = 8


@dataclass
class BenchmarkSettings:
    """How much to measure.

    Attributes:
        clicks: timed clicks per path (after warm-up).
        warmup_clicks: untimed clicks before them.
        encoder_repeats: timed encoder runs (after one warm-up run).
        threads: torch threads (None: leave as is).
        seed: seed of the weights and of the robot user's tie-breaks.
        data_root: GrabCut folder (None: default places or synthetic).
        image_index: GrabCut sample.
    """
    clicks: int = 50
    warmup_clicks: int = 5
    encoder_repeats: int = 3
    threads: Optional[int] = None
    seed: int = 0
    data_root: Optional[str] = None
    image_index: int = 0


@dataclass
class _ClickRun:
    click_s: List[float] = field(default_factory=list)
    click_cpu_s: List[float] = field(default_factory=list)
    robot_s: List[float] = field(default_factory=list)
    ref_labels: List[np.ndarray] = field(default_factory=list)


def measure_ceiling(size: int = 2048) -> Dict[str, float]:
    """GFLOP/s of large fp32 / bf16 GEMMs through MKL and oneDNN."""
    return dict(
        gemm_fp32_gflops=gemm_gflops(torch.float32, size),
        gemm_bf16_gflops=gemm_gflops(torch.bfloat16, size),
        gemm_fp32_onednn_gflops=onednn_gemm_gflops(torch.float32, size),
        gemm_bf16_onednn_gflops=onednn_gemm_gflops(torch.bfloat16, size))


def _click_loop(predictor, gt: np.ndarray, num_clicks: int, warmup: int,
                seed: int, keep_labels: int) -> _ClickRun:
    """Robot user vs predictor until ``num_clicks`` timed clicks."""
    rng = np.random.default_rng(seed)
    run = _ClickRun()
    pred = np.zeros(gt.shape, bool)
    clicks = []
    total = 0
    while len(run.click_s) < num_clicks:
        if len(clicks) == MAX_CLICKS_PER_OBJECT:  # next object
            predictor.reset()
            pred = np.zeros(gt.shape, bool)
            clicks = []
        start = time.perf_counter()
        click = next_click(gt, pred, clicks, 'official', rng)
        placed = time.perf_counter()
        if click is None:  # a perfect mask: start the next object
            if not clicks:
                raise ValueError('benchmark: the object mask is empty')
            clicks = [None] * MAX_CLICKS_PER_OBJECT
            continue
        clicks.append(click)
        cpu = time.process_time()
        predictor.add_click(click.y, click.x, click.is_positive)
        pred = predictor.predict().mask
        answered = time.perf_counter()
        cpu = time.process_time() - cpu
        iou(gt, pred)
        scored = time.perf_counter()
        total += 1
        if total > warmup:
            run.click_s.append(answered - placed)
            run.click_cpu_s.append(cpu)
            run.robot_s.append((placed - start) + (scored - answered))
        if len(run.ref_labels) < keep_labels:
            run.ref_labels.append(predictor.reference_label())
    return run


def measure_path(name: str,
                 model: torch.nn.Module,
                 image: np.ndarray,
                 gt: np.ndarray,
                 settings: BenchmarkSettings,
                 ref_labels: Optional[Sequence[np.ndarray]] = None,
                 ref_logits: Optional[Sequence[torch.Tensor]] = None) -> dict:
    """All figures of one path (see the module doc).

    Args:
        name: a key of :data:`PATH_SETTINGS`.
        model: the segmentor (shared by the paths).
        image, gt: the scenario (image shape = model canvas).
        settings: what to measure.
        ref_labels, ref_logits: the reference path's labels and logits for
            the logit comparison (None for the reference path itself).

    Returns:
        dict: the record fields plus ``ref_labels`` / ``logits`` (used by
        the following paths; not written to the record).
    """
    if PATH_SETTINGS[name]['path'] == 'onnx':
        import tempfile

        from ..deploy import OnnxPredictor
        from ..deploy.export import export_onnx
        with tempfile.TemporaryDirectory(prefix='onnx_') as folder:
            export_onnx(model, folder)
            predictor = OnnxPredictor(folder, torch.get_num_threads())
            return _measure_predictor(name, predictor, image, gt, settings,
                                      ref_labels, ref_logits)
    from ..apis import InterFormerPredictor
    predictor = InterFormerPredictor(model, **PATH_SETTINGS[name])
    return _measure_predictor(name, predictor, image, gt, settings,
                              ref_labels, ref_logits)


def _measure_predictor(name, predictor, image, gt, settings, ref_labels,
                       ref_logits) -> dict:
    """:func:`measure_path` on a built predictor (onnxruntime's FLOPs are
    not visible to torch's counter: 0 for the ``onnx`` path)."""
    predictor.set_image(image)  # warm-up (caches, oneDNN primitives)
    enc_s, enc_cpu_s = [], []
    for _ in range(settings.encoder_repeats):
        start, cpu = time.perf_counter(), time.process_time()
        predictor.set_image(image)
        enc_s.append(time.perf_counter() - start)
        enc_cpu_s.append(time.process_time() - cpu)
    encoder_flops = count_flops(lambda: predictor.set_image(image))
    run = _click_loop(predictor, gt, settings.clicks, settings.warmup_clicks,
                      settings.seed, NUM_DIFF_LABELS)
    labels = list(ref_labels) if ref_labels is not None else run.ref_labels
    logits = [
        torch.as_tensor(predictor.decode_logits(label)) for label in labels
    ]
    click_flops = count_flops(lambda: predictor.decode_logits(labels[0]))
    max_diff = 0.0
    if ref_logits is not None:
        max_diff = max(
            float((a - b).abs().max()) for a, b in zip(logits, ref_logits))
    clicks = summarize_times(run.click_s)
    robot = summarize_times(run.robot_s)
    return dict(
        path=name,
        encoder_s=float(np.median(enc_s)),
        encoder_cpu_s=float(np.median(enc_cpu_s)),
        encoder_gflops=encoder_flops / 1e9,
        click_ms_median=clicks.median_ms,
        click_ms_p90=clicks.p90_ms,
        click_ms_mean=clicks.mean_ms,
        # process CPU time (all threads): equals the wall time on one
        # thread; shows contention from other processes on a busy machine
        click_cpu_ms_median=summarize_times(run.click_cpu_s).median_ms,
        num_clicks=clicks.count,
        robot_ms_median=robot.median_ms,
        robot_ms_p90=robot.p90_ms,
        click_gflops=click_flops / 1e9,
        max_abs_diff=max_diff,
        ref_labels=labels,
        logits=logits)


def _fractions(record: dict) -> None:
    """Achieved GFLOP/s and fractions of the matching-dtype ceilings."""
    dtype = 'bf16' if record['path'] == 'bf16' else 'fp32'
    enc_rate = record['encoder_gflops'] / record['encoder_s']
    click_rate = record['click_gflops'] / (record['click_ms_median'] / 1e3)
    record['encoder_gflops_per_s'] = enc_rate
    record['click_gflops_per_s'] = click_rate
    for lib, key in (('gemm', f'gemm_{dtype}_gflops'),
                     ('onednn', f'gemm_{dtype}_onednn_gflops')):
        record[f'encoder_frac_{lib}'] = enc_rate / record[key]
        record[f'click_frac_{lib}'] = click_rate / record[key]


def run_job(model_name: str, size: Sequence[int], paths: Sequence[str],
            settings: BenchmarkSettings) -> List[dict]:
    """Benchmark one model at one image size on the given paths.

    The reference path always runs first (it provides the labels and
    logits the other paths are compared with); it is timed only when
    asked for.

    Returns:
        list[dict]: one record per requested path.
    """
    from .scenario import benchmark_sample, build_benchmark_model
    for name in paths:
        if name not in PATH_SETTINGS:
            raise ValueError(f'unknown path {name!r}; choose from '
                             f'{tuple(PATH_SETTINGS)}')
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    size = (int(size[0]), int(size[1]))
    image, gt, source = benchmark_sample(size, settings.data_root,
                                         settings.image_index)
    ceiling = measure_ceiling()
    load_before = load_average()
    model = build_benchmark_model(model_name, settings.seed)
    base = dict(
        model=model_name,
        image_size=list(size),
        image=source,
        threads=torch.get_num_threads(),
        **ceiling)
    results: Dict[str, dict] = {}
    ref_settings = settings
    if 'reference' not in paths:  # labels and logits only
        ref_settings = BenchmarkSettings(
            **{
                **asdict(settings), 'clicks': NUM_DIFF_LABELS,
                'warmup_clicks': 0,
                'encoder_repeats': 1
            })
    results['reference'] = measure_path('reference', model, image, gt,
                                        ref_settings)
    reference = results['reference']
    for name in paths:
        if name != 'reference':
            results[name] = measure_path(name, model, image, gt, settings,
                                         reference['ref_labels'],
                                         reference['logits'])
    records = []
    for name in paths:
        record = dict(base)
        record.update({
            k: v
            for k, v in results[name].items()
            if k not in ('ref_labels', 'logits')
        })
        record['speedup_click'] = record['speedup_encoder'] = None
        if 'reference' in paths:  # ratios only to a timed reference
            record['speedup_click'] = (
                reference['click_ms_median'] / record['click_ms_median'])
            record['speedup_encoder'] = (
                reference['encoder_s'] / record['encoder_s'])
        # click time as a multiple of the fast path's (same run)
        record['click_vs_fast'] = None
        if 'fast' in results:
            record['click_vs_fast'] = (
                record['click_ms_median'] / results['fast']['click_ms_median'])
        _fractions(record)
        records.append(record)
    peak = peak_rss_mb()
    load_after = load_average()
    for record in records:
        record['peak_rss_mb'] = peak
        record['load_avg'] = [load_before, load_after]
    return records
