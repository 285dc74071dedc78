"""Train for a wall-clock budget instead of a fixed number of iterations.

:class:`TimeBudgetHook` stops mmengine's ``IterBasedTrainLoop`` when the
budget is spent, shows a progress bar over the budget, and keeps the poly
learning-rate decay aligned with time: every few iterations it re-estimates
how many iterations fit in the remaining time and moves the ``end`` of every
``PolyLR`` scheduler there, so the learning rate reaches its minimum when
the time runs out, whatever the speed of the machine.
"""
import sys
import time
from typing import Optional

from mmengine.hooks import Hook
from mmengine.optim.scheduler import PolyParamScheduler
from mmseg.registry import HOOKS
from tqdm import tqdm

__all__ = ['TimeBudgetHook']


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Stop training after ``budget_s`` seconds; stretch poly LR to fit.

    Args:
        budget_s: training wall-clock budget in seconds (> 0).
        min_iters: always run at least this many iterations.
        update_interval: re-estimate the iteration count every this many
            iterations (the first estimate after ``update_interval`` too).
        progress: show a tqdm progress bar (seconds of the budget).
    """

    priority = 'VERY_LOW'  # after the optimizer and the LR step

    def __init__(self,
                 budget_s: float,
                 min_iters: int = 1,
                 update_interval: int = 10,
                 progress: bool = True) -> None:
        if not budget_s > 0:
            raise ValueError(f'budget_s must be > 0, got {budget_s}')
        if min_iters < 1 or update_interval < 1:
            raise ValueError('min_iters and update_interval must be >= 1, '
                             f'got {min_iters} and {update_interval}')
        self.budget_s = float(budget_s)
        self.min_iters = int(min_iters)
        self.update_interval = int(update_interval)
        self.progress = progress
        self.start: Optional[float] = None
        self.elapsed = 0.0
        self.iters = 0
        self._bar: Optional[tqdm] = None
        self._last_refresh = 0.0
        # a terminal redraws in place; a log file (CI) gets a line per
        # refresh, so it gets few
        self.refresh_s = 0.2 if sys.stdout.isatty() else 10.0

    def before_train(self, runner) -> None:
        self.start = time.perf_counter()
        self.iters = 0
        if self.progress:
            self._bar = tqdm(total=int(round(self.budget_s)), unit='s',
                             desc='train', file=sys.stdout,
                             dynamic_ncols=True,
                             bar_format='{l_bar}{bar}| {n:.0f}/{total} s '
                             '{postfix}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        self.iters += 1
        self.elapsed = time.perf_counter() - self.start
        if self._bar is not None:
            self._bar.n = min(self.elapsed, self.budget_s)
            loss = (outputs or {}).get('loss')
            postfix = f'iter {runner.iter + 1}'
            if loss is not None:
                loss = loss.detach() if hasattr(loss, 'detach') else loss
                postfix += f', loss {float(loss):.4f}'
            self._bar.set_postfix_str(postfix, refresh=False)
            if self.elapsed - self._last_refresh >= self.refresh_s:
                self._bar.refresh()
                self._last_refresh = self.elapsed
        if self.iters % self.update_interval == 0:
            self._stretch_poly(runner)
        if self.elapsed >= self.budget_s and self.iters >= self.min_iters:
            runner.train_loop.stop_training = True

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        runner.logger.info(f'TimeBudgetHook: {self.iters} iterations in '
                           f'{self.elapsed:.1f} s')

    def _stretch_poly(self, runner) -> None:
        """Move every PolyLR ``end`` to the projected last iteration."""
        rate = self.iters / max(self.elapsed, 1e-6)
        remaining = max(self.budget_s - self.elapsed, 0.0)
        done = runner.iter + 1
        projected = done + max(int(rate * remaining), 1)
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers:
            if isinstance(scheduler, PolyParamScheduler) and not \
                    scheduler.by_epoch:
                scheduler.end = projected + 1
                scheduler.total_iters = scheduler.end - scheduler.begin - 1
