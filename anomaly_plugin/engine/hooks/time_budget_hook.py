"""End training early when a time budget would be exceeded."""
import json
import logging
import os.path as osp
import time

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log

from anomaly_plugin.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Stop an epoch-based training after the epoch at which one more epoch
    (at the mean epoch time so far) would exceed ``budget_s`` seconds.

    The checkpoint of that epoch is the trained model (every later hook, the
    fit after training and the calibration included, runs as usual); the log
    says how many of the planned epochs ran, and ``time_budget.json`` in the
    work dir records it (``epochs``, ``max_epochs``, ``elapsed_s``,
    ``budget_s``, ``stopped``). Rank 0 decides, every rank stops with it.
    ``--cfg-options time_budget_s=S`` adds it to a config's custom hooks.

    Args:
        budget_s: training seconds allowed.
    """

    priority = 'LOWEST'

    def __init__(self, budget_s: float):
        if budget_s <= 0:
            raise ValueError(f'TimeBudgetHook: budget_s must be > 0, got {budget_s}')
        self.budget_s = float(budget_s)

    def before_train(self, runner) -> None:
        self._start = time.perf_counter()
        self._stopped = False

    def after_train_epoch(self, runner) -> None:
        elapsed = time.perf_counter() - self._start
        done = runner.epoch  # epochs finished (incremented before this hook)
        stop = torch.tensor([float(elapsed + elapsed / max(done, 1) > self.budget_s)])
        dist.broadcast(stop, src=0)
        if stop.item() and done < runner.max_epochs:
            runner.train_loop.stop_training = True
            self._stopped = True
            print_log(f'TimeBudgetHook: training stops after {done} of {runner.max_epochs} '
                      f'epochs: {elapsed:.0f} s elapsed, another epoch would pass the '
                      f'{self.budget_s:.0f} s budget', logger='current',
                      level=logging.WARNING)

    def after_train(self, runner) -> None:
        if dist.is_main_process():
            with open(osp.join(runner.work_dir, 'time_budget.json'), 'w') as f:
                json.dump(dict(epochs=runner.epoch, max_epochs=runner.max_epochs,
                               elapsed_s=time.perf_counter() - self._start,
                               budget_s=self.budget_s, stopped=self._stopped), f)
