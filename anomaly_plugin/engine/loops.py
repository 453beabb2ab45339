"""Training loops: an epoch loop with a minimum number of steps, and one no-grad
pass over the training data for fitted models."""
import logging
import math
from typing import List

import torch
from mmengine import dist
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmengine.runner.base_loop import BaseLoop

from anomaly_plugin.datasets.file_check import report_dataset_bad_files
from anomaly_plugin.registry import LOOPS

from .fitting import fit_normal, fit_stage_of


@LOOPS.register_module()
class MinItersEpochBasedTrainLoop(EpochBasedTrainLoop):
    """MMEngine's epoch loop with a floor on the number of optimiser steps.

    ``max_epochs`` epochs of a large set are many steps, of a small set few:
    45 images in batches of 16 give 3 steps an epoch, so 15 epochs are 45
    steps where 461 images get 435. This loop runs ``max_epochs`` epochs, or
    more when that is fewer than ``min_iters`` steps: ``max(max_epochs,
    ceil(min_iters / steps per epoch))`` epochs, so a small category gets as
    much training as the set the config was tuned on. On a set large enough
    it is exactly MMEngine's ``EpochBasedTrainLoop``.

    When the epochs are raised, ``val_interval`` and ``val_begin`` are scaled
    by the same factor (a config that validates once at the end still does),
    and the factor is published as ``epoch_scale`` in the message hub, where
    detectors with stages counted in epochs (``VQVAEPrior.vq_epochs``,
    ``FAnoGAN.gan_epochs``) scale their stage boundaries with it, so each stage
    keeps its share of the training. The epoch count depends only on the
    dataloader's length, so ``--resume`` continues the same schedule.

    Args:
        runner, dataloader, val_begin, val_interval, dynamic_intervals: as
            for :class:`~mmengine.runner.EpochBasedTrainLoop`.
        max_epochs: epochs on a set large enough.
        min_iters: the fewest optimiser steps (0: plain ``max_epochs``).
    """

    def __init__(self, runner, dataloader, max_epochs: int, min_iters: int = 0,
                 val_begin: int = 1, val_interval: int = 1, dynamic_intervals=None):
        super().__init__(runner, dataloader, max_epochs, val_begin, val_interval,
                         dynamic_intervals)
        per_epoch = len(self.dataloader)
        self.nominal_max_epochs = int(max_epochs)
        self.min_iters = int(min_iters)
        epochs = max(self.nominal_max_epochs, math.ceil(self.min_iters / max(per_epoch, 1)))
        self.epoch_scale = epochs / self.nominal_max_epochs
        if epochs > self.nominal_max_epochs:
            self._max_epochs, self._max_iters = epochs, epochs * per_epoch
            self.val_interval = max(1, round(val_interval * self.epoch_scale))
            self.val_begin = max(1, round(val_begin * self.epoch_scale))
            self.dynamic_milestones = [round(m * self.epoch_scale)
                                       for m in self.dynamic_milestones]
            self.dynamic_intervals = [max(1, round(i * self.epoch_scale))
                                      for i in self.dynamic_intervals]
            print_log(f'{per_epoch} steps per epoch: {max_epochs} epochs would be '
                      f'{max_epochs * per_epoch} steps, under min_iters={self.min_iters}; '
                      f'training {epochs} epochs ({self._max_iters} steps)',
                      logger='current', level=logging.INFO)

    def run(self):
        self.runner.message_hub.update_info('epoch_scale', self.epoch_scale)
        return super().run()


def first_occurrence(rank_indices: List[List[int]], rank: int) -> List[bool]:
    """Which of ``rank``'s samples are not repeats of an earlier sample.

    Ranks interleave (position ``p`` of rank ``r`` is global position
    ``p * world + r``, as MMEngine's samplers and result collection assume);
    the distributed sampler pads the last round with repeats, which are
    dropped here so every sample is fitted once.
    """
    seen, keep = set(), []
    longest = max(len(x) for x in rank_indices)
    for p in range(longest):
        for r, idx in enumerate(rank_indices):
            if p < len(idx):
                new = idx[p] not in seen
                seen.add(idx[p])
                if r == rank:
                    keep.append(new)
    return keep


@LOOPS.register_module()
class FitLoop(BaseLoop):
    """Fit a detector with ``fit_stage='instead'`` (PatchCore, PaDiM) by one
    pass over ``dataloader`` (:func:`~anomaly_plugin.engine.fit_normal`).

    Runs the training hooks as one epoch of one iteration, so the
    ``CalibrationHook`` and the checkpoint hook run after the fit. Training
    files that failed when decoded in full (replaced by the dataset, see
    :class:`~anomaly_plugin.datasets.BaseAnomalyDataset`) are reported, all
    of them, at the end of the pass, before the fit. Validation
    runs afterwards only when configured; fitting does not depend on it.
    """

    def __init__(self, runner, dataloader):
        super().__init__(runner, dataloader)
        self._epoch = 0
        self._iter = 0

    max_epochs = property(lambda self: 1)
    max_iters = property(lambda self: 1)
    epoch = property(lambda self: self._epoch)
    iter = property(lambda self: self._iter)

    def _sample_indices(self) -> torch.Tensor:
        sampler = self.dataloader.sampler
        if getattr(sampler, 'shuffle', False):
            raise ValueError('FitLoop needs an unshuffled sampler '
                             '(train_dataloader.sampler.shuffle=False)')
        return torch.as_tensor(list(iter(sampler)), dtype=torch.long)

    def run(self):
        runner = self.runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if fit_stage_of(model) != 'instead':
            raise TypeError(f'{type(model).__name__} is trained with gradients '
                            f"(fit_stage={model.fit_stage!r}); use a gradient-based train "
                            "loop instead of FitLoop")
        runner.call_hook('before_train')
        runner.call_hook('before_train_epoch')
        runner.call_hook('before_train_iter', batch_idx=0, data_batch=None)
        indices = self._sample_indices()
        all_indices = dist.all_gather_object(indices.tolist())
        keep = torch.as_tensor(first_occurrence(all_indices, dist.get_rank()))

        def report(bad):
            report_dataset_bad_files([b for part in dist.all_gather_object(bad) for b in part],
                                     self.dataloader.dataset, 'decoding the pass over the data',
                                     'the training data')

        fit_normal(model, self.dataloader, indices, keep, progress=dist.is_main_process(),
                   note_input_size=True, on_bad_files=report)
        runner.call_hook('after_train_iter', batch_idx=0, data_batch=None, outputs={})
        self._iter += 1
        runner.call_hook('after_train_epoch')
        self._epoch += 1
        if runner._val_loop is not None:
            runner.val_loop.run()
        runner.call_hook('after_train')
        return model
