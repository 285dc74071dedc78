"""The quickstart pipeline: generate -> click test -> train -> click test.

:func:`run_quickstart` does, in one process and without any download:

1. write (or reuse) the procedural COCO-panoptic dataset
   (:mod:`interformer.quickstart.synthetic`);
2. build ``configs/interformer_quickstart.py`` with mmengine's
   ``Runner`` (the path of ``tools/train.py``) and initialise the model;
3. click-test the untrained model on held-out generated instances
   (:func:`interformer.evaluation.run_click_test`, RITM protocol,
   20 clicks);
4. train it for a wall-clock budget (``TimeBudgetHook``);
5. save ``latest.pth`` next to the dumped config
   ``interformer_quickstart.py`` (what ``tools/demo.py`` and
   ``tools/clicktest.py`` load);
6. click-test the trained model, print both NoC tables side by side, write
   the mIoU-vs-clicks plot, the per-instance JSONs and ``summary.json``.
"""
import json
import logging
import os
import os.path as osp
import sys
import time
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmseg.registry import DATASETS

from ..apis import InterFormerPredictor
from ..evaluation import (
    get_protocol,
    plot_miou_curves,
    results_table,
    run_click_test,
    save_json,
)
from ..utils.config import read_config, resolve_references
from .hooks import TimeBudgetHook
from .synthetic import DEFAULT_SIZE_RANGE, generate_dataset, is_complete

__all__ = [
    'DEFAULT_CONFIG', 'DEFAULT_OUT_DIR', 'run_quickstart', 'build_config',
    'comparison_table', 'next_commands', 'save_weights', 'prepare_data',
    'write_reports'
]

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'interformer_quickstart.py')
DEFAULT_OUT_DIR = osp.join('work_dirs', 'quickstart')
CONFIG_NAME = 'interformer_quickstart.py'
CHECKPOINT_NAME = 'latest.pth'
SUMMARY_NAME = 'summary.json'
PLOT_NAME = 'miou_vs_clicks.png'
TABLE_NAME = 'noc_table.txt'
REPORTED_THRS = (0.85, 0.9)
#: The eval sets of the paper and where tools/clicktest.py expects them.
BENCHMARKS = (('grabcut', 'data/click_test/GrabCut'),
              ('berkeley', 'data/click_test/Berkeley'),
              ('davis', 'data/click_test/DAVIS'),
              ('sbd', 'data/click_test/SBD'))
DOWNLOAD_SCRIPT = 'data/click_test/download.sh'


def _log(message: str) -> None:
    print(f'[quickstart] {message}', flush=True)


def build_config(config: str, out_dir: str, data_root: str,
                 time_budget: float, seed: int) -> Config:
    """Load the quickstart config and point it at this run.

    Args:
        config: config file (``configs/interformer_quickstart.py``).
        out_dir: the run's output folder (the Runner's ``work_dir``).
        data_root: the generated dataset.
        time_budget: training seconds.
        seed: the Runner's seed.
    """
    cfg = read_config(config)
    cfg.work_dir = out_dir
    # The config's '${data_root}' / '${time_budget}' entries take these.
    cfg.data_root = data_root
    cfg.time_budget = float(time_budget)
    resolve_references(cfg)
    cfg.randomness = dict(cfg.get('randomness', {}), seed=int(seed))
    # Keep the console to the progress bars; the losses still go to
    # <work_dir>/<timestamp>/vis_data/scalars.json.
    cfg.log_level = 'WARNING'
    return cfg


def _noc(result) -> dict:
    summary = result.summary()
    return {f'NoC@{round(t * 100)}': round(float(summary[
        f'NoC@{round(t * 100)}']), 4) for t in REPORTED_THRS}


def comparison_table(untrained, trained) -> str:
    """NoC@85/90 and mIoU@1/5/last of the same model before and after
    training."""
    rows = [('', 'untrained', 'trained')]
    for t in REPORTED_THRS:
        key = f'NoC@{round(t * 100)}'
        rows.append((key, f'{untrained.summary()[key]:.2f}',
                     f'{trained.summary()[key]:.2f}'))
    curve_len = len(untrained.summary()['mIoU_curve'])
    for k in sorted({1, min(5, curve_len), curve_len}):
        rows.append((f'mIoU@{k}',
                     f'{untrained.summary()["mIoU_curve"][k - 1]:.3f}',
                     f'{trained.summary()["mIoU_curve"][k - 1]:.3f}'))
    return '\n'.join(f'{a:>8} | {b:^10} | {c:^10}' for a, b, c in rows)


def _python() -> str:
    """How to call this interpreter: ``.venv/bin/python`` inside the
    current folder, else ``python``."""
    rel = osp.relpath(sys.executable)
    return rel if not rel.startswith(os.pardir) else 'python'


def next_commands(out_dir: str) -> List[str]:
    """The commands that evaluate the trained model and open the demo."""
    python = _python()
    ckpt = osp.join(out_dir, CHECKPOINT_NAME)
    cfg = osp.join(out_dir, CONFIG_NAME)
    lines = [f'bash {DOWNLOAD_SCRIPT}  # GrabCut, Berkeley, DAVIS, SBD']
    lines += [
        f'{python} tools/clicktest.py {cfg} {ckpt} --dataset {name} '
        f'--data-root {root}' for name, root in BENCHMARKS
    ]
    if osp.normpath(out_dir) == osp.normpath(DEFAULT_OUT_DIR):
        lines.append(f'{python} tools/demo.py')
    else:
        lines.append(f'{python} tools/demo.py {cfg} {ckpt}')
    return lines


def save_weights(runner: Runner, path: str) -> None:
    """Save the model weights (no optimizer state) atomically to ``path``.
    """
    tmp_name = osp.basename(path) + '.tmp'
    logger = runner.logger
    level = logger.level
    logger.setLevel(logging.ERROR)  # mmengine's FileClient deprecation notes
    try:
        runner.save_checkpoint(osp.dirname(path) or '.', tmp_name,
                               save_optimizer=False,
                               save_param_scheduler=False, by_epoch=False)
    finally:
        logger.setLevel(level)
    os.replace(osp.join(osp.dirname(path), tmp_name), path)


class _BeforeTrainHook(Hook):
    """Calls ``fn(runner.model)`` when training starts (weights ready)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def before_train(self, runner) -> None:
        self.fn(runner.model)


def _click_test(model: torch.nn.Module, dataset, protocol, seed: int,
                name: str, device: str):
    predictor = InterFormerPredictor(model, device=device)
    return run_click_test(predictor, dataset, protocol, seed=seed,
                          dataset_name=name)


def prepare_data(data_root: str, num_train: int, num_val: int,
                 seed: int) -> None:
    """Generate the dataset, or reuse a complete copy; logs which."""
    reused = all(
        is_complete(data_root, split, n, seed, DEFAULT_SIZE_RANGE)
        for split, n in (('train', num_train), ('val', num_val)))
    tic = time.perf_counter()
    generate_dataset(data_root, num_train, num_val, seed)
    _log(f'data: {"reused" if reused else "generated"} {num_train} train + '
         f'{num_val} val images in {data_root} '
         f'({time.perf_counter() - tic:.1f} s)')


def write_reports(out_dir: str, untrained, trained, **extra) -> dict:
    """Write the NoC table, the plot, both JSONs and ``summary.json``.

    Args:
        out_dir: output folder.
        untrained, trained: the two click-test results.
        **extra: more ``summary.json`` entries (e.g. ``train_seconds``).

    Returns:
        dict: the ``summary.json`` content.
    """
    table = results_table([untrained, trained], 'interformer_quickstart')
    with open(osp.join(out_dir, TABLE_NAME), 'w') as f:
        f.write(table + '\n\n' + comparison_table(untrained, trained) +
                '\n')
    plot_miou_curves([untrained, trained], osp.join(out_dir, PLOT_NAME),
                     'Synthetic held-out val: mIoU vs number of clicks')
    for result in (untrained, trained):
        save_json(result,
                  osp.join(out_dir, f'clicktest_{result.dataset}.json'),
                  meta=dict(config=osp.join(out_dir, CONFIG_NAME)))
    summary = dict(untrained=_noc(untrained), trained=_noc(trained), **extra)
    with open(osp.join(out_dir, SUMMARY_NAME), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary


def run_quickstart(out_dir: str = DEFAULT_OUT_DIR,
                   time_budget: float = 420.0,
                   seed: int = 0,
                   num_eval_instances: int = 40,
                   device: Optional[str] = None,
                   config: str = DEFAULT_CONFIG,
                   data_root: Optional[str] = None,
                   num_train: int = 300,
                   num_val: int = 40,
                   max_clicks: int = 20) -> dict:
    """Run the whole quickstart; returns the ``summary.json`` content.

    Args:
        out_dir: output folder (config, checkpoint, logs, reports).
        time_budget: training wall-clock seconds.
        seed: data, training and click-test seed.
        num_eval_instances: held-out instances in the click test (spread
            over the generated val split).
        device: torch device for training and the click test (default:
            ``cuda`` when available, else ``cpu``).
        config: the quickstart config.
        data_root: generated dataset folder (default ``<out_dir>/data``).
        num_train, num_val: images per generated split.
        max_clicks: clicks per instance.
    """
    if time_budget <= 0:
        raise ValueError(f'time_budget must be > 0 s, got {time_budget}')
    if num_eval_instances < 1:
        raise ValueError(f'num_eval_instances must be >= 1, got '
                         f'{num_eval_instances}')
    start = time.perf_counter()
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    data_root = data_root or osp.join(out_dir, 'data')
    os.makedirs(out_dir, exist_ok=True)
    prepare_data(data_root, num_train, num_val, seed)

    cfg = build_config(config, out_dir, data_root, time_budget, seed)
    runner = Runner.from_cfg(cfg)  # dumps <out_dir>/interformer_quickstart.py
    model = runner.model.to(device)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    _log(f'model: {n_params:.2f} M parameters, device {device}')
    dataset = DATASETS.build(
        dict(cfg.quickstart_eval, max_instances=num_eval_instances))
    protocol = get_protocol('ritm', max_clicks=max_clicks,
                            early_stop_iou=None)  # full curves for the plot
    results = {}

    def test_untrained(model: torch.nn.Module) -> None:
        _log(f'click test of the untrained model on {len(dataset)} '
             'held-out instances')
        results['untrained'] = _click_test(model, dataset, protocol, seed,
                                           'untrained', device)
        _log(f'training for {time_budget:.0f} s')

    # The untrained click test runs inside Runner.train(), after the weight
    # initialisation: it sees exactly the weights training starts from.
    runner.register_hook(_BeforeTrainHook(test_untrained), 'VERY_HIGH')
    runner.train()
    budget = next(h for h in runner.hooks if isinstance(h, TimeBudgetHook))
    save_weights(runner, osp.join(out_dir, CHECKPOINT_NAME))
    _log('click test of the trained model')
    trained = _click_test(model, dataset, protocol, seed, 'trained', device)

    summary = write_reports(
        out_dir, results['untrained'], trained,
        train_seconds=round(budget.elapsed, 1),
        train_iters=int(runner.iter),
        time_budget=float(time_budget),
        num_eval_instances=len(dataset),
        protocol=protocol.name,
        max_clicks=max_clicks,
        seed=int(seed),
        device=device,
        total_seconds=round(time.perf_counter() - start, 1))
    with open(osp.join(out_dir, TABLE_NAME)) as f:
        print(f.read())
    _log(f'trained {summary["train_iters"]} iterations in '
         f'{summary["train_seconds"]:.0f} s; whole run '
         f'{summary["total_seconds"]:.0f} s')
    _log('wrote ' + ', '.join(
        osp.join(out_dir, name)
        for name in (CONFIG_NAME, CHECKPOINT_NAME, SUMMARY_NAME, PLOT_NAME)))
    print('Next: evaluate on the benchmarks (layouts: data/README.md) and '
          'open the demo:')
    for line in next_commands(out_dir):
        print(f'  {line}')
    return summary
