"""Where a training iteration goes (``tools/benchmark_train.py``).

:func:`run_train_benchmark` builds the model, the optimiser wrapper, the
schedulers, the hooks and the training data loader of a config through
mmengine's ``Runner`` (the path of ``tools/train.py``), on generated data by
default (the quickstart generator, images of 15/16 to 5/4 of the config's
crop size). Its loop (:class:`TrainBenchmarkLoop`, which replaces the
config's ``IterBasedTrainLoop`` and keeps its ``max_iters`` so the
schedules are the real ones) runs, after ``warmup`` iterations:

1. ``iters`` instrumented iterations: every phase of
   :data:`~.train_phases.PHASES` timed with the device synchronised at its
   boundaries (``other`` = the iteration minus the named phases: hooks, loss
   parsing, mode switches);
2. interleaved with them, ``iters`` plain iterations (synchronised only at
   their ends) with the same torch seeds, hence the same click counts
   ``n``: their median is ``iter_ms``; the phases should add up to it (the
   instrumentation's own cost shows as the difference);
3. optionally two profiled iterations (``--profile DIR``).

The FLOP floor is what the iteration's matrix products would cost at the
device's measured matmul rate: torch's ``FlopCounterMode`` on one loss
forward + backward (no simulated clicks), plus the no-grad backbone
(``P(n > 0)``) and one neck + head pass per expected simulated click
(``E[n]``), divided by the GFLOP/s of a large square matmul in the
iteration's dtype.
"""
import os.path as osp
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import LOOPS
from torch.utils.flop_counter import FlopCounterMode

from .train_phases import PHASES, PhaseTimer, instrument_simulation

__all__ = ['TrainBenchSettings', 'TrainBenchmarkLoop', 'prepare_config']


@dataclass
class TrainBenchSettings:
    """What :func:`run_train_benchmark` measures.

    Attributes:
        config: config file path.
        device: ``'cpu'`` or ``'cuda'``.
        iters: instrumented iterations (and as many plain ones).
        warmup: untimed iterations first.
        batch: images per iteration (None: the config's).
        amp: mixed precision as ``tools/train.py --amp``.
        amp_dtype: ``'float16'`` or ``'bfloat16'`` (None: float16 on CUDA,
            bfloat16 on CPU).
        cfg_options: config overrides (``--cfg-options``).
        data_root: a COCO-panoptic root to read instead of generated data.
        num_images: generated training images.
        workers: loader workers (None: the config's).
        profile_dir: write a torch profiler trace of 2 iterations here.
        compile: ``torch.compile`` the backbone.
        flops: measure the FLOP floor.
        seed: base torch seed of the timed iterations.
        cpu_time: time with the main thread's CPU time
            (``time.thread_time``) instead of wall time: for CPU runs with
            one torch thread and no loader workers, immune to other load.
    """
    config: str
    device: str = 'cpu'
    iters: int = 5
    warmup: int = 1
    batch: Optional[int] = None
    amp: bool = False
    amp_dtype: Optional[str] = None
    cfg_options: Optional[dict] = None
    data_root: Optional[str] = None
    num_images: int = 32
    workers: Optional[int] = None
    profile_dir: Optional[str] = None
    compile: bool = False
    flops: bool = True
    seed: int = 0
    cpu_time: bool = False
    extra: Dict = field(default_factory=dict)


def _crop_size(cfg: Config) -> tuple:
    size = cfg.get('crop_size', None)
    if size is None:
        size = cfg.model.get('data_preprocessor', {}).get('size', None)
    if size is None:
        raise ValueError('the config has neither crop_size nor '
                         'model.data_preprocessor.size')
    return tuple(int(s) for s in size)


def _train_pipeline(cfg: Config) -> list:
    if cfg.get('train_pipeline', None) is not None:
        return cfg.train_pipeline
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset:
        dataset = dataset.datasets[0]
    return dataset.pipeline


def _enable_amp(cfg: Config, device: str, dtype: Optional[str]) -> None:
    """``tools/train.py --amp`` for the chosen device."""
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type="OptimWrapper", '
                         f'the config has {cfg.optim_wrapper.type!r}')
    if device == 'cuda':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = dtype or 'float16'
        if cfg.optim_wrapper.dtype == 'float16':
            cfg.optim_wrapper.loss_scale = 'dynamic'
    else:
        if dtype == 'float16':
            raise ValueError('--amp-dtype float16 needs CUDA')
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'


def prepare_config(settings: TrainBenchSettings, work_dir: str) -> Config:
    """The config's training setup with generated data and the benchmark
    loop (no checkpoints, no validation)."""
    from ..quickstart.synthetic import generate_split, panoptic_paths
    if not osp.isfile(settings.config):
        raise FileNotFoundError(f'config file not found: {settings.config}')
    cfg = Config.fromfile(settings.config)
    if settings.cfg_options:
        cfg.merge_from_dict(settings.cfg_options)
    crop = _crop_size(cfg)
    root = settings.data_root
    if root is None:
        root = osp.join(work_dir, 'data')
        side = min(crop)
        generate_split(root, 'train', settings.num_images, seed=0,
                       size_range=(side * 15 // 16, max(crop) * 5 // 4))
    paths = panoptic_paths(root, 'train')
    if not osp.isfile(paths['ann_file']):
        raise FileNotFoundError(f'--data-root {root}: no '
                                f'{paths["ann_file"]}')
    loader = cfg.train_dataloader
    loader.dataset = dict(
        type='COCOPanopticDataset',
        data_root=root,
        ann_file=osp.relpath(paths['ann_file'], root),
        data_prefix=dict(
            img_path=osp.relpath(paths['img_dir'], root),
            seg_map_path=osp.relpath(paths['seg_dir'], root)),
        pipeline=_train_pipeline(cfg))
    loader.sampler = dict(type='InfiniteSampler', shuffle=True)
    if settings.batch is not None:
        loader.batch_size = int(settings.batch)
    if settings.workers is not None:
        loader.num_workers = int(settings.workers)
    loader.persistent_workers = loader.get('num_workers', 0) > 0
    max_iters = cfg.train_cfg.get('max_iters', 320000)
    cfg.train_cfg = dict(
        type='TrainBenchmarkLoop',
        max_iters=max_iters,
        warmup=settings.warmup,
        iters=settings.iters,
        seed=settings.seed,
        profile_dir=settings.profile_dir,
        flops=settings.flops,
        compile=settings.compile,
        cpu_time=settings.cpu_time)
    for key in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg',
                'test_dataloader', 'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=settings.seed)
    if settings.amp:
        _enable_amp(cfg, settings.device, settings.amp_dtype)
    return cfg


def _median_dict(records: List[Dict[str, float]], how=statistics.median):
    return {k: how([r[k] for r in records]) * 1e3 for k in records[0]}


def matmul_gflops(device: torch.device,
                  dtype: torch.dtype,
                  clock=time.perf_counter) -> float:
    """Median GFLOP/s of a large square matmul on ``device``."""
    size = 4096 if device.type == 'cuda' else 2048
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).to(device, dtype)
    timer = PhaseTimer(device, clock=clock)
    times = []
    with torch.inference_mode():
        for i in range(7):
            start = timer.now()
            torch.mm(a, b)
            if i >= 2:
                times.append(timer.now() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def _expected_clicks(train_cfg) -> tuple:
    from ..interaction.click_simulation import _simulation_cfg
    cfg = _simulation_cfg(train_cfg)
    weights = float(cfg['gamma'])**np.arange(int(cfg['max_num_clicks']) + 1)
    probs = weights / weights.sum()
    return float(1 - probs[0]), float((probs * np.arange(len(probs))).sum())


@LOOPS.register_module()
class TrainBenchmarkLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that times its iterations by phase.

    After :meth:`run`, :attr:`result` holds the record (see
    :func:`~interformer.benchmark.train_report.make_record`).

    Args:
        warmup, iters, seed, profile_dir, flops, compile, cpu_time: see
            :class:`TrainBenchSettings`.
        others: as ``IterBasedTrainLoop``.
    """

    def __init__(self,
                 runner,
                 dataloader,
                 max_iters: int,
                 warmup: int = 1,
                 iters: int = 5,
                 seed: int = 0,
                 profile_dir: Optional[str] = None,
                 flops: bool = True,
                 compile: bool = False,
                 cpu_time: bool = False,
                 **kwargs) -> None:
        super().__init__(runner, dataloader, max_iters, **kwargs)
        if iters < 1 or warmup < 0:
            raise ValueError(f'need iters >= 1 and warmup >= 0, got '
                             f'{iters} and {warmup}')
        self.warmup, self.iters, self.seed = warmup, iters, seed
        self.profile_dir, self.flops = profile_dir, flops
        self.compile = compile
        self.clock = time.thread_time if cpu_time else time.perf_counter
        self.result: Dict = {}

    @property
    def segmentor(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    @property
    def device(self) -> torch.device:
        return next(self.segmentor.parameters()).device

    def _step(self, timer: PhaseTimer, seed: int) -> float:
        """One training iteration (``model.train_step`` + hooks)."""
        runner, seg = self.runner, self.segmentor
        wrapper = runner.optim_wrapper
        start = timer.now()
        with timer.phase('data'):
            data_batch = next(self.dataloader_iterator)
        runner.call_hook(
            'before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        runner.model.train()
        torch.manual_seed(seed)
        with wrapper.optim_context(seg):
            with timer.phase('data'):
                data = seg.data_preprocessor(data_batch, True)
            with timer.phase('forward'):
                losses = seg._run_forward(data, mode='loss')
        loss, log_vars = seg.parse_losses(losses)
        with timer.phase('backward'):
            wrapper.backward(loss)
        with timer.phase('optimizer'):
            if wrapper.should_update():
                wrapper.step()
                wrapper.zero_grad()
        runner.call_hook(
            'after_train_iter',
            batch_idx=self._iter,
            data_batch=data_batch,
            outputs=log_vars)
        self._iter += 1
        return timer.now() - start

    def run(self):
        """Warm up, time, profile; fill :attr:`result`."""
        runner, device = self.runner, self.device
        runner.call_hook('before_train')
        runner.call_hook('before_train_epoch')
        if self.compile:
            self.segmentor.backbone = torch.compile(self.segmentor.backbone)
        plain = PhaseTimer(device, enabled=False, clock=self.clock)
        for i in range(self.warmup):
            self._step(plain, self.seed + 10_000 + i)
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        timer = PhaseTimer(device, clock=self.clock)
        records, totals = [], []
        for i in range(self.iters):  # interleaved: same load, same n
            with instrument_simulation(timer, self.segmentor):
                total = self._step(timer, self.seed + i)
            phases = timer.reset()
            named = {p: phases.get(p, 0.0) for p in PHASES[:-1]}
            named['other'] = total - sum(named.values())
            records.append(named)
            totals.append(self._step(plain, self.seed + i))
        self.result = dict(
            iter_ms=statistics.median(totals) * 1e3,
            iter_ms_all=[t * 1e3 for t in totals],
            phases_ms=_median_dict(records),
            phases_mean_ms=_median_dict(records, statistics.mean),
            peak_mem_mb=self._peak_memory_mb())
        if self.profile_dir:
            self._profile()
        if self.flops:
            self.result.update(self._flop_floor())
        runner.call_hook('after_train_epoch')
        runner.call_hook('after_train')
        return runner.model

    def _peak_memory_mb(self) -> float:
        if self.device.type == 'cuda':
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        from .measure import peak_rss_mb
        return peak_rss_mb()

    def _profile(self) -> None:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU]
        if self.device.type == 'cuda':
            activities.append(ProfilerActivity.CUDA)
        plain = PhaseTimer(self.device, enabled=False)
        with profile(activities=activities, record_shapes=True) as prof:
            for i in range(2):
                self._step(plain, self.seed + i)
        import os
        os.makedirs(self.profile_dir, exist_ok=True)
        path = osp.join(self.profile_dir, 'train_trace.json')
        prof.export_chrome_trace(path)
        self.result['profile_trace'] = path

    def _flop_floor(self) -> dict:
        """FLOPs of an iteration's matrix products and their time at the
        measured matmul rate."""
        seg, wrapper = self.segmentor, self.runner.optim_wrapper
        data = seg.data_preprocessor(next(self.dataloader_iterator), True)
        inputs, samples = data['inputs'], data['data_samples']
        train_cfg = seg.train_cfg
        p_any, mean_n = _expected_clicks(train_cfg)
        seg.train_cfg = dict(train_cfg or {}, max_num_clicks=0)
        try:
            with FlopCounterMode(display=False) as counter:
                with wrapper.optim_context(seg):
                    loss, _ = seg.parse_losses(seg.loss(inputs, samples))
                loss.backward()
            step_flops = counter.get_total_flops()
        finally:
            seg.train_cfg = train_cfg
            wrapper.zero_grad()
        seg.eval()
        with torch.no_grad(), wrapper.optim_context(seg):
            with FlopCounterMode(display=False) as counter:
                feats = seg.extract_image_feats(inputs)
            backbone_flops = counter.get_total_flops()
            with FlopCounterMode(display=False) as counter:
                ref = seg.unknown_reference_label(inputs)
                seg.upsample_logits(
                    seg.decode_clicks(feats, ref), inputs.shape[-2:])
            click_flops = counter.get_total_flops()
        seg.train()
        dtype = torch.float32
        if hasattr(wrapper, 'cast_dtype'):  # (CPU)AmpOptimWrapper
            dtype = wrapper.cast_dtype or torch.float16
        gflops = matmul_gflops(self.device, dtype, self.clock)
        total = step_flops + p_any * backbone_flops + mean_n * click_flops
        return dict(
            flops_per_iter=float(total),
            matmul_gflops=gflops,
            matmul_dtype=str(dtype).replace('torch.', ''),
            flop_floor_ms=total / gflops / 1e6,
            expected_sim_clicks=mean_n)
