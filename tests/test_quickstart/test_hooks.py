"""TimeBudgetHook: stops on time, stretches PolyLR to the projected end."""
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.optim.scheduler import LinearLR, PolyLR

from interformer.quickstart.hooks import TimeBudgetHook


def _runner(schedulers):
    return SimpleNamespace(
        iter=0,
        train_loop=SimpleNamespace(stop_training=False),
        param_schedulers=schedulers,
        logger=MMLogger.get_instance('test_time_budget'))


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def _run(hook, runner, iters, step_seconds, schedulers=()):
    hook.before_train(runner)
    for i in range(iters):
        runner.iter = i
        time.sleep(step_seconds)
        for s in schedulers:
            s.optimizer.step()
            s.step()
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(1.)))
        if runner.train_loop.stop_training:
            return i + 1
    return iters


def test_stops_when_budget_spent():
    hook = TimeBudgetHook(budget_s=0.2, progress=False)
    runner = _runner([])
    done = _run(hook, runner, 1000, 0.01)
    assert runner.train_loop.stop_training
    assert 5 <= done < 1000
    assert hook.elapsed >= 0.2 and hook.iters == done
    hook.after_train(runner)


def test_min_iters():
    hook = TimeBudgetHook(budget_s=1e-4, min_iters=5, progress=False)
    runner = _runner([])
    assert _run(hook, runner, 100, 0.001) == 5


def test_poly_end_follows_the_time():
    optimizer = _optimizer()
    warmup = LinearLR(optimizer, start_factor=0.5, by_epoch=False, begin=0,
                      end=3)
    poly = PolyLR(optimizer, eta_min=0.0, by_epoch=False, begin=0,
                  end=100001)
    hook = TimeBudgetHook(budget_s=0.3, update_interval=5, progress=False)
    runner = _runner([warmup, poly])
    done = _run(hook, runner, 10000, 0.01, [warmup, poly])
    # the projected end is near the number of iterations that fit
    assert poly.end < 1000
    assert abs(poly.end - done) <= max(10, done // 3)
    # the learning rate ends close to zero instead of ~1.0
    assert optimizer.param_groups[0]['lr'] < 0.35


def test_bad_arguments():
    with pytest.raises(ValueError, match='budget_s'):
        TimeBudgetHook(budget_s=0)
    with pytest.raises(ValueError, match='min_iters'):
        TimeBudgetHook(budget_s=1, min_iters=0)
