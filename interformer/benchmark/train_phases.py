"""Phase timing of one training iteration (``tools/benchmark_train.py``).

:class:`PhaseTimer` times nested regions with the device synchronised at
every boundary, so a phase holds the device work it launched; a region's
time is its own, without the regions nested in it (the click simulation
inside the loss forward, the model calls inside the simulation).

:func:`instrument_simulation` splits the training click simulation of
:mod:`interformer.interaction.click_simulation` into

* ``sim_device``: the model calls (backbone, neck + head per simulated
  click, upsampling) and, on the device route
  (:mod:`interformer.interaction.device_clicks`), the click placement and
  reference-label updates, which are tensor operations on the model's
  device;
* ``sim_host``: everything else in the simulation: the host work of the
  numpy route (``next_click``, the reference-label updates in numpy), the
  transfers and the random draws.
"""
import importlib
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from typing import Callable, Dict, Iterator, List

import torch

__all__ = ['PHASES', 'PhaseTimer', 'instrument_simulation']

#: The phases of an iteration, in table order.
PHASES = ('data', 'sim_device', 'sim_host', 'forward', 'backward',
          'optimizer', 'other')


class PhaseTimer:
    """Exclusive wall time of nested phases, device-synchronised.

    Args:
        device: ``torch.device`` of the model; CUDA devices are synchronised
            at every boundary.
        enabled: False makes :meth:`phase` a no-op (plain iterations).
        clock: seconds counter; ``time.thread_time`` measures the CPU time
            of the calling thread (robust to a loaded machine when torch
            runs on one thread).
    """

    def __init__(self,
                 device: torch.device,
                 enabled: bool = True,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.device = torch.device(device)
        self.enabled = enabled
        self.clock = clock
        self.totals: Dict[str, float] = defaultdict(float)
        self._stack: List[List] = []  # [name, start, nested seconds]

    def sync(self) -> None:
        """Wait for the device (no-op on CPU)."""
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def now(self) -> float:
        """Synchronised clock reading (default ``time.perf_counter()``)."""
        self.sync()
        return self.clock()

    @property
    def current(self) -> str:
        """Name of the innermost open phase ('' when none)."""
        return self._stack[-1][0] if self._stack else ''

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` (minus the phases nested in it)."""
        if not self.enabled:
            yield
            return
        entry = [name, self.now(), 0.0]
        self._stack.append(entry)
        try:
            yield
        finally:
            elapsed = self.now() - entry[1]
            self._stack.pop()
            self.totals[name] += elapsed - entry[2]
            if self._stack:
                self._stack[-1][2] += elapsed

    def reset(self) -> Dict[str, float]:
        """Return the totals (seconds) and start from zero."""
        totals, self.totals = dict(self.totals), defaultdict(float)
        return totals


def _timed(timer: PhaseTimer, name: str, fn: Callable,
           inside: str) -> Callable:
    """``fn`` timed as ``name`` while the open phase is ``inside``."""

    def wrapper(*args, **kwargs):
        if timer.current != inside:
            return fn(*args, **kwargs)
        with timer.phase(name):
            return fn(*args, **kwargs)

    return wrapper


@contextmanager
def _patched(obj, attr: str, value) -> Iterator[None]:
    had = attr in vars(obj)
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, attr, old)
        else:
            delattr(obj, attr)


@contextmanager
def instrument_simulation(timer: PhaseTimer, segmentor) -> Iterator[None]:
    """Time the training click simulation of ``segmentor`` by phase.

    While active, ``simulate_reference_labels`` runs as ``sim_host`` and
    the model calls and device click routines inside it as ``sim_device``
    (both routes of ``train_cfg.route``).
    """
    from ..interaction import click_simulation, device_clicks

    # the module, not the function the package exports under its name
    click_step = importlib.import_module('interformer.interaction.click_step')

    simulate = click_simulation.simulate_reference_labels

    def timed_simulation(*args, **kwargs):
        with timer.phase('sim_host'):
            return simulate(*args, **kwargs)

    with ExitStack() as stack:
        stack.enter_context(
            _patched(click_simulation, 'simulate_reference_labels',
                     timed_simulation))
        for attr in ('extract_image_feats', 'decode_clicks',
                     'upsample_logits'):
            stack.enter_context(
                _patched(
                    segmentor, attr,
                    _timed(timer, 'sim_device', getattr(segmentor, attr),
                           'sim_host')))
        for module, attr in ((device_clicks, 'next_clicks'),
                             (device_clicks, 'mark_clicked'),
                             (click_step, 'update_by_prediction'),
                             (click_step, 'add_click_disks')):
            stack.enter_context(
                _patched(
                    module, attr,
                    _timed(timer, 'sim_device', getattr(module, attr),
                           'sim_host')))
        yield
