"""MMEngine metrics for image- and pixel-level anomaly detection."""
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from anomaly_plugin.datasets.file_check import report_metric_bad_files
from anomaly_plugin.registry import METRICS

from .full_resolution import original_entry, original_size_metrics
from .functional import (
    Curve,
    ap_from_curve,
    auroc_from_curve,
    check_binary,
    check_scores,
    f1_from_curve,
    threshold_curve,
)
from .pro import aupro_from_curve, label_regions, pro_curve_counts

IMAGE_METRICS = ('AUROC', 'AP', 'F1max')
PIXEL_METRICS = ('AUROC', 'AP', 'F1max', 'AUPRO')
RESOLUTIONS = ('input', 'original')


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


def _binary_metrics(curve: Curve, names: Sequence[str]) -> Dict[str, float]:
    """AUROC / AP / F1max (those in ``names``) from one sorted pass."""
    out = {}
    if 'AUROC' in names:
        out['AUROC'] = auroc_from_curve(curve)
    if 'AP' in names:
        out['AP'] = ap_from_curve(curve)
    if 'F1max' in names:
        out['F1max'] = f1_from_curve(curve)[0]
    return out


def write_curve(path: str, curve: Curve, num_normal: Optional[int] = None,
                max_points: int = 256) -> None:
    """Write the ROC (and with ``num_normal``, the PRO) curve as JSON, at most
    about ``max_points`` points (evenly spaced over the thresholds, the ends
    kept): ``{"fpr": [...], "tpr": [...], "pro": [...]}``, starting at 0.

    Args:
        path: the JSON file (its folder is created).
        curve: the cumulative counts (for PRO: :func:`pro_curve_counts`'s).
        num_normal: negatives of the PRO curve; None for a plain ROC curve.
        max_points: about how many points to keep.
    """
    num_pos, num_neg = int(curve.tps[-1]), int(curve.fps[-1])
    keep = np.unique(np.linspace(0, len(curve.tps) - 1, min(len(curve.tps), max_points))
                     .round().astype(np.int64))
    out = dict(fpr=[0.0] + (curve.fps[keep] / max(num_neg, 1)).tolist(),
               tpr=[0.0] + (curve.tps[keep] / max(num_pos, 1)).tolist())
    if num_normal is not None:
        out['pro'] = [0.0] + curve.pos_cum[curve.tps[keep]].tolist()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(out, f)


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
        curve_file: also write the ROC curve there (:func:`write_curve`).
    """
    default_prefix = 'image'

    def __init__(self,
                 metrics: Union[str, Sequence[str]] = IMAGE_METRICS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 curve_file: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        self.metrics = _select(metrics, IMAGE_METRICS, type(self).__name__)
        self.curve_file = curve_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each sample's score (float32) and label (int8).

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: predicted samples as dicts (``to_dict()``).
        """
        owner = type(self).__name__
        for sample in data_samples:
            if sample.get('bad_files'):  # a stand-in for a file that did not decode
                self.results.append(dict(bad_files=list(sample['bad_files'])))
                continue
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
        results = report_metric_bad_files(self, results)
        if not results:
            raise ValueError(f'{owner}: no samples to evaluate')
        scores = np.array([r['score'] for r in results], dtype=np.float32)
        labels = np.array([r['label'] for r in results], dtype=np.int8)
        labels = check_binary(labels, owner, 'gt_label')
        scores = check_scores(scores, owner, 'pred_score')
        num_pos = int(labels.sum())
        if num_pos in (0, labels.size):
            raise ValueError(
                f'{owner}: image metrics are undefined when the test set holds '
                f'one class only (got {num_pos} anomalous and '
                f'{labels.size - num_pos} normal images); it needs both')
        curve = threshold_curve(scores, labels)
        if self.curve_file:
            write_curve(self.curve_file, curve)
        return _binary_metrics(curve, self.metrics)


@METRICS.register_module()
class PixelMetric(BaseMetric):
    """Pixel-level AUROC, average precision, F1-max and AUPRO.

    Reads each sample's ``gt_mask`` and ``anomaly_map``; samples without a
    ``gt_mask`` are skipped. When no sample has a mask, or no mask has an
    anomalous pixel, the metrics are undefined: :meth:`compute_metrics` logs
    a warning and returns ``{}``. Mask pixels other than 0 count as
    anomalous.

    Two protocols:

    - ``resolution='input'`` (default): exact metrics at the size of the
      given maps and masks (the model input size, or ``eval_size``).
    - ``resolution='original'``: the official full-resolution protocol.
      Each map is upsampled bilinearly (``align_corners=False``) to its
      image's ``ori_shape`` and compared with the mask read from
      ``mask_path`` at its native size (all zeros for a sample without
      ``mask_path``, which must then have an empty ``gt_mask``). Only the
      input-size maps are kept; :meth:`compute_metrics` reads, upsamples
      and bins one image at a time into about ``num_bins`` score bins, so
      memory does not grow with the image size. The metrics are those of
      the binned curves (see :mod:`.binned`), within computed bounds of
      the exact full-resolution values: the bounds are logged and kept in
      :attr:`last_bounds`. Needs ``ori_shape`` and ``mask_path`` in the
      samples' metainfo, and ``mask_threshold`` when the dataset sets one.
      The maps must cover the whole image: the test pipeline may resize
      but not crop or flip.

    Args:
        metrics: subset of ``('AUROC', 'AP', 'F1max', 'AUPRO')`` to compute.
        fpr_limit: FPR integration limit of AUPRO, in (0, 1].
        eval_size: optional (h, w) (or one int for both) at which to
            evaluate with ``resolution='input'``: maps are resized bilinearly
            and masks with nearest neighbour before they are stored. By
            default the size given (the model input size) is kept, and mask
            and map must match.
        resolution: ``'input'`` or ``'original'`` (see above).
        num_bins: about how many score bins ``resolution='original'`` uses
            (at least 16); more bins give smaller bounds at little cost (the
            bounds shrink about as ``1 / num_bins``).
        mask_threshold: mask binarisation threshold for
            ``resolution='original'`` (pixel anomalous when ``> threshold``,
            in the file's units). None uses each sample's ``mask_threshold``
            metainfo when present, else :func:`read_mask`'s default (half the
            dtype's maximum). Set it to match ``LoadAnomalyMask(threshold)``.
        collect_device: device used to gather results across ranks.
        prefix: prefix of the result keys, ``'pixel'`` by default, giving
            ``'pixel/AUROC'`` etc.
        collect_dir: temporary directory for gathering on CPU.
        curve_file: also write the ROC and PRO curves there
            (:func:`write_curve`; ``resolution='input'`` only).

    Attributes:
        last_bounds: after :meth:`compute_metrics` (on the main process),
            ``{name: bound}`` with ``|value - exact| <= bound``; all 0 for
            ``resolution='input'`` (exact), ``{}`` when nothing was computed.
    """
    default_prefix = 'pixel'

    def __init__(self,
                 metrics: Union[str, Sequence[str]] = PIXEL_METRICS,
                 fpr_limit: float = 0.3,
                 eval_size: Optional[Union[int, Sequence[int]]] = None,
                 resolution: str = 'input',
                 num_bins: int = 16384,
                 mask_threshold: Optional[float] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 curve_file: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        owner = type(self).__name__
        self.metrics = _select(metrics, PIXEL_METRICS, owner)
        self.curve_file = curve_file
        if not 0 < fpr_limit <= 1:
            raise ValueError(
                f'{owner}: fpr_limit must be in (0, 1], got {fpr_limit}')
        self.fpr_limit = float(fpr_limit)
        if resolution not in RESOLUTIONS:
            raise ValueError(f'{owner}: resolution must be one of '
                             f'{RESOLUTIONS}, got {resolution!r}')
        if eval_size is not None:
            if resolution == 'original':
                raise ValueError(f"{owner}: eval_size cannot be combined with "
                                 "resolution='original'")
            if isinstance(eval_size, int):
                eval_size = (eval_size, eval_size)
            eval_size = tuple(int(s) for s in eval_size)
            if len(eval_size) != 2 or min(eval_size) <= 0:
                raise ValueError(f'{owner}: eval_size must be a positive '
                                 f'(h, w), got {eval_size}')
        if int(num_bins) != num_bins or num_bins < 16:
            raise ValueError(
                f'{owner}: num_bins must be an integer >= 16, got {num_bins}')
        self.eval_size = eval_size
        self.resolution = resolution
        self.num_bins = int(num_bins)
        self.mask_threshold = mask_threshold
        self.last_bounds: Dict[str, float] = {}

    def _resize(self, amap: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        amap = F.interpolate(amap[None, None].float(), size=self.eval_size,
                             mode='bilinear', align_corners=False)[0, 0]
        mask = F.interpolate((mask[None, None] != 0).float(),
                             size=self.eval_size, mode='nearest')[0, 0]
        return amap, mask  # (h, w), (h, w)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each sample's map (float32) and ground truth as numpy.

        With ``resolution='input'`` the ground truth is the mask (bool); with
        ``'original'`` it is ``mask_path``, ``ori_shape``, the mask threshold
        and the input-size mask packed to bits (only used to place the bins).
        A sample without ``gt_mask`` adds a ``None`` entry, so that the
        results keep one entry per sample when gathered across ranks.

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: predicted samples as dicts (``to_dict()``).
        """
        owner = type(self).__name__
        for sample in data_samples:
            if sample.get('bad_files'):  # a stand-in for a file that did not decode
                self.results.append(dict(bad_files=list(sample['bad_files'])))
                continue
            if sample.get('gt_mask', None) is None:
                self.results.append(None)
                continue
            mask = _map_2d(_field(sample, 'gt_mask', owner), 'gt_mask', owner)
            amap = _map_2d(_field(sample, 'anomaly_map', owner), 'anomaly_map',
                           owner)
            if self.resolution == 'original':
                self.results.append(original_entry(sample, amap, mask, self.mask_threshold, owner))
                continue
            if self.eval_size is not None:
                amap, mask = self._resize(amap, mask)
            elif amap.shape != mask.shape:
                raise ValueError(
                    f'{owner}: anomaly_map {tuple(amap.shape)} and gt_mask '
                    f'{tuple(mask.shape)} differ in size; set eval_size')
            self.results.append(
                dict(anomaly_map=amap.to(torch.float32).cpu().numpy().copy(),
                     gt_mask=(mask != 0).cpu().numpy()))

    def _warn_no_anomaly(self, detail: str) -> Dict[str, float]:
        print_log(f'{type(self).__name__}: pixel metrics are undefined '
                  'because no ground-truth mask has an anomalous pixel '
                  f'({detail}); they are skipped', logger='current',
                  level=logging.WARNING)
        return {}

    def compute_metrics(self, results: List[Optional[dict]]
                        ) -> Dict[str, float]:
        """Compute the selected metrics over all samples with a mask.

        Args:
            results: the per-sample entries of all ranks.

        Returns:
            ``{name: value}`` with float values in [0, 1], or ``{}`` (after
            a logged warning) when no sample had a mask or no mask has an
            anomalous pixel.
        """
        owner = type(self).__name__
        self.last_bounds = {}
        results = [r for r in report_metric_bad_files(self, results) if r is not None]
        if not results:
            print_log(f'{owner}: no sample has a gt_mask, pixel metrics are '
                      'skipped', logger='current', level=logging.WARNING)
            return {}
        if self.resolution == 'original':
            num_masks = sum(r['mask_path'] is not None for r in results)
            if num_masks == 0:
                return self._warn_no_anomaly(f'{len(results)} samples, none with a mask_path')
            computed = original_size_metrics(results, self.metrics, self.fpr_limit,
                                             self.num_bins, owner)
            if computed is None:
                return self._warn_no_anomaly(f'{num_masks} mask files read')
            out, self.last_bounds, num_bins = computed
            print_log(
                f'{owner}: full-resolution metrics of {len(results)} images in '
                f'{num_bins} score bins; bounds on the error against the '
                'exact values: ' + ', '.join(
                    f'{m} {b:.2e}' for m, b in self.last_bounds.items()),
                logger='current', level=logging.INFO)
            return out
        masks = [r['gt_mask'] for r in results]
        if not any(m.any() for m in masks):
            return self._warn_no_anomaly(f'{len(masks)} masks')
        scores = np.concatenate([r['anomaly_map'].reshape(-1)
                                 for r in results])  # (n,) float32
        scores = check_scores(scores, owner, 'anomaly_map')
        if 'AUPRO' in self.metrics:
            # one sorted pass serves all metrics: region ids (0 = normal
            # pixel) are the binary labels, weighted for PRO
            curve, num_normal = pro_curve_counts(label_regions(masks), scores)
            if self.curve_file:
                write_curve(self.curve_file, curve, num_normal)
            out = _binary_metrics(curve, self.metrics)
            out['AUPRO'] = aupro_from_curve(curve, num_normal, self.fpr_limit)
        else:
            labels = np.concatenate([m.reshape(-1) for m in masks])  # (n,)
            out = _binary_metrics(threshold_curve(scores, labels),
                                  self.metrics)
        self.last_bounds = {m: 0.0 for m in self.metrics}
        return {m: out[m] for m in self.metrics}
