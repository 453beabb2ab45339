"""The one way a detector fits statistics of normal images.

A detector's ``fit_stage`` says when (``'instead'`` of gradient training, run
by :class:`~anomaly_plugin.engine.FitLoop`; ``'after'`` it, run by
:class:`~anomaly_plugin.engine.hooks.NormalFitHook`); :func:`fit_normal` is
the pass both run: ``fit_reset()``, ``fit_update(inputs, indices)`` per batch
and ``fit_finish()``, in eval mode and without gradients.
"""
import logging
from typing import Callable, Dict, Iterable, List, Optional

import torch
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from anomaly_plugin.datasets.base import bad_files_of

FIT_STAGES = (None, 'instead', 'after')


def fit_stage_of(model) -> Optional[str]:
    """The model's ``fit_stage``, checked to be one of :data:`FIT_STAGES`."""
    stage = getattr(model, 'fit_stage', None)
    if stage not in FIT_STAGES:
        raise ValueError(f'{type(model).__name__}.fit_stage must be one of {FIT_STAGES}, '
                         f'got {stage!r}')
    return stage


@torch.no_grad()
def fit_normal(model, dataloader: Iterable, indices: Optional[torch.Tensor] = None,
               keep: Optional[torch.Tensor] = None, progress: bool = False,
               note_input_size: bool = False,
               on_bad_files: Optional[Callable[[list], None]] = None
               ) -> Dict[str, List[float]]:
    """Fit ``model`` on the normal images of ``dataloader``.

    Args:
        model: the detector (not a distributed wrapper).
        dataloader: batches as the model's ``data_preprocessor`` takes them.
        indices: (N,) dataset index of every sample in loader order; by
            default their position.
        keep: (N,) bool, the samples to fit (a distributed sampler's repeats
            left out); by default all.
        progress: show a progress bar over the batches.
        note_input_size: record the input size (when the fit is the model's
            training).
        on_bad_files: called with the files the dataset replaced during the
            pass (see :class:`~anomaly_plugin.datasets.BaseAnomalyDataset`),
            before the fit is finished.

    Returns:
        The model's fit statistics (``fit_finish``'s), also logged.

    Raises:
        ValueError: when the data loader gives no images.
    """
    was_training = model.training
    model.eval()
    try:
        model.fit_reset()
        bar = ProgressBar(len(dataloader)) if progress else None
        pos, bad = 0, []
        for data in dataloader:
            bad += bad_files_of(data.get('data_samples') or ())
            inputs = model.data_preprocessor(data, False)['inputs']  # (B, 3, H, W)
            if note_input_size:
                model.note_input_size(inputs)
            n = inputs.shape[0]
            idx = torch.arange(pos, pos + n) if indices is None else indices[pos:pos + n]
            sel = torch.ones(n, dtype=torch.bool) if keep is None else keep[pos:pos + n]
            if sel.all():
                model.fit_update(inputs, idx)
            elif sel.any():
                model.fit_update(inputs[sel.to(inputs.device)], idx[sel])
            pos += n
            if bar is not None:
                bar.update()
        if on_bad_files is not None:
            on_bad_files(bad)
        if not pos:
            raise ValueError(f'{type(model).__name__}: the data loader gave no images to fit on')
        print_log(f'{type(model).__name__}: fitting on the {pos} images of the pass',
                  logger='current', level=logging.INFO)
        stats = model.fit_finish(progress=progress)
        if stats:
            print_log('Normal-image statistics: ' + ', '.join(
                f'{k}={[round(v, 6) for v in vals]}' for k, vals in stats.items()),
                logger='current')
        return stats
    finally:
        model.train(was_training)
