"""Thresholds and min-max normalisation from data the test never sees.

Two steps, each usable on its own:

1. :func:`collect_predictions` runs the model over a calibration set (held-out
   normal training images, or a labelled validation split).
2. :func:`compute_calibration` turns those predictions into thresholds and
   normalisation bounds:

   * ``mode='f1'``: F1-optimal thresholds on a labelled set (image labels for
     the image threshold, masks for the pixel threshold);
   * ``mode='quantile'``: the ``image_quantile`` / ``pixel_quantile`` of the
     scores of normal images;
   * ``mode='manual'``: the given ``image_threshold`` / ``pixel_threshold``;
   * ``mode='auto'``: ``'f1'`` when the set holds anomalous images, else
     ``'quantile'``.

   The normalisation bounds are the min and max of the calibration scores
   (and of the calibration maps for pixels).

:func:`calibrate` does both and stores the result in the model's
post-processor buffers, so it is saved with the checkpoint.
"""
from typing import Dict, Iterable, Optional

import numpy as np
import torch
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar

from anomaly_plugin.datasets.file_check import report_dataset_bad_files
from anomaly_plugin.evaluation.functional import f1_max_threshold

MODES = ('auto', 'f1', 'quantile', 'manual')


@torch.no_grad()
def collect_predictions(model, dataloader: Iterable,
                        progress: bool = True) -> Dict[str, Optional[np.ndarray]]:
    """Predictions of ``model`` on every batch of ``dataloader``.

    Returns:
        dict with ``scores`` (N,) float32, ``labels`` (N,) int64,
        ``maps`` (N, H, W) float32, ``masks`` (N, H, W) uint8 (None when
        the set has no masks) and ``paths`` (the N image paths). Stand-ins
        for files that did not decode are left out and reported (see
        :func:`~anomaly_plugin.datasets.file_check.report_bad_files`).
    """
    if is_model_wrapper(model):
        model = model.module
    was_training = model.training
    model.eval()
    scores, labels, maps, masks, paths, bad = [], [], [], [], [], []
    bar = ProgressBar(len(dataloader)) if progress else None
    for data in dataloader:
        for s in model.test_step(data):
            if s.get('bad_files'):  # a stand-in for a file that did not decode
                bad += s.bad_files
                continue
            scores.append(float(s.pred_score))
            labels.append(int(s.gt_label) if 'gt_label' in s else 0)
            maps.append(s.anomaly_map.cpu().numpy())
            masks.append(s.gt_mask.cpu().numpy() if 'gt_mask' in s else None)
            paths.append(s.get('img_path', f'#{len(paths)}'))
        if bar is not None:
            bar.update()
    model.train(was_training)
    report_dataset_bad_files(bad, getattr(dataloader, 'dataset', None),
                             'decoding the calibration pass', 'the calibration set')
    if not scores:
        raise ValueError('the calibration set is empty')
    has_masks = all(m is not None for m in masks)
    return dict(scores=np.asarray(scores, np.float32),
                labels=np.asarray(labels, np.int64),
                maps=np.stack(maps).astype(np.float32),
                masks=np.stack(masks).astype(np.uint8) if has_masks else None,
                paths=paths)


def check_finite(preds: Dict[str, Optional[np.ndarray]]) -> None:
    """Refuse NaN or infinite scores and maps, naming the images.

    Raises:
        ValueError: some image score or map pixel is not finite (the
            model diverged, e.g. a NaN loss, or a map divides by zero); a
            threshold computed from them would be NaN.
    """
    bad_score = ~np.isfinite(preds['scores'])  # (N,)
    bad_map = ~np.isfinite(preds['maps']).reshape(len(bad_score), -1).all(1)  # (N,)
    bad = np.flatnonzero(bad_score | bad_map)
    if bad.size:
        paths = preds.get('paths') or [f'#{i}' for i in range(len(bad_score))]
        names = ', '.join(str(paths[i]) for i in bad[:5]) + (' ...' if bad.size > 5 else '')
        raise ValueError(
            f'calibration refused: the model gives NaN or infinite values on {bad.size} of '
            f'{len(bad_score)} calibration images ({int(bad_score.sum())} image scores, '
            f'{int(bad_map.sum())} anomaly maps), e.g. {names}; the model has diverged '
            '(check the training loss) or its map is not defined on these images')


def compute_calibration(preds: Dict[str, Optional[np.ndarray]], mode: str = 'auto',
                        image_quantile: float = 0.99, pixel_quantile: float = 0.999,
                        image_threshold: Optional[float] = None,
                        pixel_threshold: Optional[float] = None) -> Dict[str, float]:
    """Thresholds and normalisation bounds from calibration predictions.

    Args:
        preds: output of :func:`collect_predictions`.
        mode: see the module docstring.
        image_quantile, pixel_quantile: quantiles of normal scores / normal
            pixels used by ``'quantile'`` mode.
        image_threshold, pixel_threshold: values used by ``'manual'`` mode.

    Raises:
        ValueError: an unknown mode, a set that cannot serve the mode, or
            NaN / infinite predictions (see :func:`check_finite`).

    Returns:
        dict with ``image_threshold``, ``pixel_threshold``, ``image_min``,
        ``image_max``, ``pixel_min``, ``pixel_max``.
    """
    if mode not in MODES:
        raise ValueError(f'calibration mode must be one of {MODES}, got {mode!r}')
    scores, labels, maps, masks = (preds['scores'], preds['labels'],
                                   preds['maps'], preds['masks'])
    check_finite(preds)
    has_anomalies = bool((labels == 1).any()) and bool((labels == 0).any())
    if mode == 'auto':
        mode = 'f1' if has_anomalies else 'quantile'
    if mode == 'f1' and not has_anomalies:
        raise ValueError("mode='f1' needs a calibration set with both normal and "
                         'anomalous images')
    if mode == 'manual':
        if image_threshold is None or pixel_threshold is None:
            raise ValueError("mode='manual' needs image_threshold and pixel_threshold")
        img_thr, pix_thr = float(image_threshold), float(pixel_threshold)
    elif mode == 'f1':
        img_thr = f1_max_threshold(labels, scores)[1]
        if masks is not None and masks.any():
            pix_thr = f1_max_threshold(masks.reshape(-1), maps.reshape(-1))[1]
        else:
            pix_thr = float(np.quantile(maps[labels == 0], pixel_quantile))
    else:
        normal = labels == 0
        if not normal.any():
            raise ValueError("mode='quantile' needs normal images in the calibration set")
        img_thr = float(np.quantile(scores[normal], image_quantile))
        pix_thr = float(np.quantile(maps[normal], pixel_quantile))
    return dict(image_threshold=float(img_thr), pixel_threshold=float(pix_thr),
                image_min=float(scores.min()), image_max=float(scores.max()),
                pixel_min=float(maps.min()), pixel_max=float(maps.max()))


def calibrate(model, dataloader: Iterable, progress: bool = True,
              **kwargs) -> Dict[str, float]:
    """Collect predictions, compute the calibration, store it in ``model``.

    Args:
        model: a detector (or a wrapper around one) with ``postprocessor``.
        dataloader: the calibration set.
        **kwargs: passed to :func:`compute_calibration`.

    Returns:
        The stored calibration values.
    """
    values = compute_calibration(collect_predictions(model, dataloader, progress),
                                 **kwargs)
    module = model.module if is_model_wrapper(model) else model
    module.postprocessor.set_calibration(values)
    return values
