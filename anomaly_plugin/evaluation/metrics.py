"""MMEngine metrics for image- and pixel-level anomaly detection."""
import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from anomaly_plugin.registry import METRICS

from .functional import (
    _ap_from_curve,
    _auroc_from_curve,
    _check_binary,
    _check_scores,
    _Curve,
    _f1_from_curve,
    _threshold_curve,
)
from .pro import _aupro_from_curve, _label_regions, _pro_curve_counts

IMAGE_METRICS = ('AUROC', 'AP', 'F1max')
PIXEL_METRICS = ('AUROC', 'AP', 'F1max', 'AUPRO')


def _select(metrics: Union[str, Sequence[str]], allowed: Tuple[str, ...],
            owner: str) -> Tuple[str, ...]:
    names = (metrics, ) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in names if m not in allowed]
    if unknown or not names:
        raise ValueError(f'{owner}: metrics must be a non-empty subset of '
                         f'{allowed}, got {names}')
    return names


def _field(sample, key: str, owner: str) -> torch.Tensor:
    value = sample.get(key, None)
    if value is None:
        raise KeyError(f'{owner}: data sample has no {key!r}')
    return torch.as_tensor(value).detach()


def _scalar(sample, key: str, owner: str) -> float:
    value = _field(sample, key, owner)
    if value.numel() != 1:
        raise ValueError(f'{owner}: {key} must hold one value, got shape '
                         f'{tuple(value.shape)}')
    return value.reshape(()).item()


def _map_2d(value: torch.Tensor, key: str, owner: str) -> torch.Tensor:
    while value.ndim > 2 and value.shape[0] == 1:
        value = value[0]
    if value.ndim != 2:
        raise ValueError(f'{owner}: {key} must be (H, W), got shape '
                         f'{tuple(value.shape)}')
    return value


def _binary_metrics(curve: _Curve, names: Sequence[str]) -> Dict[str, float]:
    """AUROC / AP / F1max (those in ``names``) from one sorted pass."""
    out = {}
    if 'AUROC' in names:
        out['AUROC'] = _auroc_from_curve(curve)
    if 'AP' in names:
        out['AP'] = _ap_from_curve(curve)
    if 'F1max' in names:
        out['F1max'] = _f1_from_curve(curve)[0]
    return out


@METRICS.register_module()
class ImageMetric(BaseMetric):
    """Image-level AUROC, average precision and F1-max.

    Reads each sample's ``gt_label`` (0 normal, 1 anomalous) and
    ``pred_score``. The test set must hold both normal and anomalous images,
    otherwise :meth:`compute_metrics` raises ``ValueError``.

    Args:
        metrics: subset of ``('AUROC', 'AP', 'F1max')`` to compute.
        collect_device: device used to gather results across ranks.
        prefix: prefix of the result keys, ``'image'`` by default, giving
            ``'image/AUROC'`` etc.
        collect_dir: temporary directory for gathering on CPU.
    """
    default_prefix = 'image'

    def __init__(self,
                 metrics: Union[str, Sequence[str]] = IMAGE_METRICS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        self.metrics = _select(metrics, IMAGE_METRICS, type(self).__name__)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each sample's score (float32) and label (int8).

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: predicted samples as dicts (``to_dict()``).
        """
        owner = type(self).__name__
        for sample in data_samples:
            self.results.append(
                dict(score=np.float32(_scalar(sample, 'pred_score', owner)),
                     label=np.int8(_scalar(sample, 'gt_label', owner))))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the selected metrics over all stored samples.

        Args:
            results: the per-sample entries of all ranks.

        Returns:
            ``{name: value}`` with float values in [0, 1].
        """
        owner = type(self).__name__
        scores = np.array([r['score'] for r in results], dtype=np.float32)
        labels = np.array([r['label'] for r in results], dtype=np.int8)
        labels = _check_binary(labels, owner, 'gt_label')
        scores = _check_scores(scores, owner, 'pred_score')
        return _binary_metrics(_threshold_curve(scores, labels), self.metrics)


@METRICS.register_module()
class PixelMetric(BaseMetric):
    """Pixel-level AUROC, average precision, F1-max and AUPRO.

    Reads each sample's ``gt_mask`` and ``anomaly_map``; samples without a
    ``gt_mask`` are skipped. When no sample has a mask,
    :meth:`compute_metrics` logs a warning and returns ``{}``. Mask pixels
    other than 0 count as anomalous.

    Args:
        metrics: subset of ``('AUROC', 'AP', 'F1max', 'AUPRO')`` to compute.
        fpr_limit: FPR integration limit of AUPRO, in (0, 1].
        eval_size: optional (h, w) (or one int for both) at which to
            evaluate: maps are resized bilinearly and masks with nearest
            neighbour before they are stored. By default the size given (the
            model input size) is kept, and mask and map must match.
        collect_device: device used to gather results across ranks.
        prefix: prefix of the result keys, ``'pixel'`` by default, giving
            ``'pixel/AUROC'`` etc.
        collect_dir: temporary directory for gathering on CPU.
    """
    default_prefix = 'pixel'

    def __init__(self,
                 metrics: Union[str, Sequence[str]] = PIXEL_METRICS,
                 fpr_limit: float = 0.3,
                 eval_size: Optional[Union[int, Sequence[int]]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        owner = type(self).__name__
        self.metrics = _select(metrics, PIXEL_METRICS, owner)
        if not 0 < fpr_limit <= 1:
            raise ValueError(
                f'{owner}: fpr_limit must be in (0, 1], got {fpr_limit}')
        self.fpr_limit = float(fpr_limit)
        if eval_size is not None:
            if isinstance(eval_size, int):
                eval_size = (eval_size, eval_size)
            eval_size = tuple(int(s) for s in eval_size)
            if len(eval_size) != 2 or min(eval_size) <= 0:
                raise ValueError(f'{owner}: eval_size must be a positive '
                                 f'(h, w), got {eval_size}')
        self.eval_size = eval_size

    def _resize(self, amap: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        amap = F.interpolate(amap[None, None].float(), size=self.eval_size,
                             mode='bilinear', align_corners=False)[0, 0]
        mask = F.interpolate((mask[None, None] != 0).float(),
                             size=self.eval_size, mode='nearest')[0, 0]
        return amap, mask  # (h, w), (h, w)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each sample's map (float32) and mask (bool) as numpy.

        A sample without ``gt_mask`` adds a ``None`` entry, so that the
        results keep one entry per sample when gathered across ranks.

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: predicted samples as dicts (``to_dict()``).
        """
        owner = type(self).__name__
        for sample in data_samples:
            if sample.get('gt_mask', None) is None:
                self.results.append(None)
                continue
            mask = _map_2d(_field(sample, 'gt_mask', owner), 'gt_mask', owner)
            amap = _map_2d(_field(sample, 'anomaly_map', owner), 'anomaly_map',
                           owner)
            if self.eval_size is not None:
                amap, mask = self._resize(amap, mask)
            elif amap.shape != mask.shape:
                raise ValueError(
                    f'{owner}: anomaly_map {tuple(amap.shape)} and gt_mask '
                    f'{tuple(mask.shape)} differ in size; set eval_size')
            self.results.append(
                dict(anomaly_map=amap.to(torch.float32).cpu().numpy().copy(),
                     gt_mask=(mask != 0).cpu().numpy()))

    def compute_metrics(self, results: List[Optional[dict]]
                        ) -> Dict[str, float]:
        """Compute the selected metrics over all samples with a mask.

        Args:
            results: the per-sample entries of all ranks.

        Returns:
            ``{name: value}`` with float values in [0, 1], or ``{}`` when no
            sample had a mask.
        """
        owner = type(self).__name__
        results = [r for r in results if r is not None]
        if not results:
            print_log(f'{owner}: no sample has a gt_mask, pixel metrics are '
                      'skipped', logger='current', level=logging.WARNING)
            return {}
        scores = np.concatenate([r['anomaly_map'].reshape(-1)
                                 for r in results])  # (n,) float32
        scores = _check_scores(scores, owner, 'anomaly_map')
        masks = [r['gt_mask'] for r in results]
        if 'AUPRO' in self.metrics:
            # one sorted pass serves all metrics: region ids (0 = normal
            # pixel) are the binary labels, weighted for PRO
            curve, num_normal = _pro_curve_counts(_label_regions(masks), scores)
            out = _binary_metrics(curve, self.metrics)
            out['AUPRO'] = _aupro_from_curve(curve, num_normal, self.fpr_limit)
        else:
            labels = np.concatenate([m.reshape(-1) for m in masks])  # (n,)
            out = _binary_metrics(_threshold_curve(scores, labels),
                                  self.metrics)
        return {m: out[m] for m in self.metrics}
