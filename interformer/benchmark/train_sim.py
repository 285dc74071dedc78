"""The host part of the training click simulation, both routes, A/B.

:func:`simulation_ab` times ``simulate_reference_labels`` on real batches
of a config's training pipeline (generated data at its crop size), with a
stand-in decoder (dark pixels, pulled towards the clicked disks) instead of
the network, so that only the click simulation's own work is measured:
for each batch and each route (``numpy``: ``next_click`` on the host;
``device``: :mod:`interformer.interaction.device_clicks`), interleaved,
with the same generator seed (the same ``n``, drawn from the real law
``P(n) ∝ gamma^n``), the phases ``sim_host`` and ``sim_device`` of
:func:`~.train_phases.instrument_simulation`. Means over the batches are
the averages over the sampled click counts. On the CPU with one torch
thread the phases are the main thread's CPU time (``time.thread_time``),
which a loaded machine does not inflate; otherwise wall time.
"""
import statistics
import tempfile
import time
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .train_phases import PhaseTimer, instrument_simulation

__all__ = ['StandInDecoder', 'simulation_ab']


class StandInDecoder(nn.Module):
    """A cheap segmentor stand-in: predicts the darker pixels, pulled
    towards the positive disks and away from the negative ones."""

    def extract_image_feats(self, inputs):
        return inputs.mean(dim=1, keepdim=True)

    def decode_clicks(self, feats, ref):
        score = -feats[:, 0] + 1.5 * (ref[:, 0].float() - 2)
        score = F.avg_pool2d(score[:, None], 5, 1, 2)[:, 0]
        return torch.stack([torch.zeros_like(score), score], dim=1)

    def upsample_logits(self, logits, size):
        return F.interpolate(logits, size=tuple(size), mode='bilinear',
                             align_corners=False)


def simulation_ab(settings, batches: int = 20) -> Dict[str, dict]:
    """Mean / median ms per iteration of the simulation phases per route.

    Args:
        settings: a :class:`~.train_step.TrainBenchSettings` (config,
            device, batch, cfg_options, data).
        batches: loader batches (each simulated once per route).

    Returns:
        dict: route -> ``{'sim_host_mean_ms', 'sim_host_median_ms',
        'sim_device_mean_ms', 'mean_n'}``.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from ..interaction import click_simulation
    from .train_step import prepare_config
    device = torch.device(settings.device)
    with tempfile.TemporaryDirectory(prefix='benchmark_sim_') as tmp:
        cfg = prepare_config(settings, tmp)
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        loader = Runner.build_dataloader(cfg.train_dataloader)
        from mmseg.registry import MODELS
        preprocessor = MODELS.build(cfg.model.data_preprocessor).to(device)
        train_cfg = dict(cfg.model.get('train_cfg', None) or {})
        seg = StandInDecoder().to(device)
        cpu_time = device.type == 'cpu' and torch.get_num_threads() == 1
        timer = PhaseTimer(
            device, clock=time.thread_time if cpu_time else time.perf_counter)
        times = {r: [] for r in click_simulation.ROUTES}
        counts = []
        it = iter(loader)
        for index in range(batches):
            data = preprocessor(next(it), True)
            inputs = data['inputs']
            gt = torch.stack([s.gt_sem_seg.data
                              for s in data['data_samples']]).long()
            seed = 1000 + index
            counts.append(
                click_simulation.sample_num_iterations(
                    np.random.default_rng(seed),
                    train_cfg.get('max_num_clicks', 20),
                    train_cfg.get('gamma', 0.6)))
            for route in click_simulation.ROUTES:
                with instrument_simulation(timer, seg), torch.no_grad():
                    click_simulation.simulate_reference_labels(
                        seg, inputs, gt, dict(train_cfg, route=route),
                        rng=np.random.default_rng(seed))
                times[route].append(timer.reset())
    result = {}
    for route, records in times.items():
        host = [r.get('sim_host', 0.0) * 1e3 for r in records]
        dev = [r.get('sim_device', 0.0) * 1e3 for r in records]
        result[route] = dict(
            sim_host_mean_ms=statistics.mean(host),
            sim_host_median_ms=statistics.median(host),
            sim_device_mean_ms=statistics.mean(dev),
            mean_n=statistics.mean(counts),
            batches=batches,
            clock='thread CPU time' if cpu_time else 'wall time')
    return result
