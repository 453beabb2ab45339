"""Pixel metrics at the images' original sizes, one image at a time.

:func:`original_entry` is what ``PixelMetric(resolution='original')``
stores of a sample; :func:`original_size_metrics` runs its two passes over
the stored input-size maps: :func:`original_edges` places the score bins,
:func:`original_size_counts` upsamples each map to its image's size, reads
its mask at native size and adds both to the per-bin counts of
:class:`~anomaly_plugin.evaluation.binned.BinnedCounts`.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from anomaly_plugin.datasets.image_io import read_mask

from .binned import BinnedCounts, bin_edges, binned_metrics


def original_entry(sample: dict, amap: torch.Tensor, mask: torch.Tensor,
                   mask_threshold: Optional[float], owner: str) -> dict:
    """What ``PixelMetric(resolution='original')`` stores of one sample.

    Args:
        sample: the predicted sample as a dict (``img_path``, ``ori_shape``,
            ``mask_path``, optional ``mask_threshold`` and ``crop_box``).
        amap: (h, w) input-size anomaly map.
        mask: (h, w) input-size ground truth (non-zero = anomalous).
        mask_threshold: the metric's mask threshold; None takes the sample's.
        owner: how errors name the metric.

    Returns:
        The entry: the float32 map, the input-size mask packed to bits (only
        to place the bins), ``img_path``, ``mask_path``, ``ori_shape`` and
        the mask threshold.
    """
    img_path = sample.get('img_path', None)
    if sample.get('crop_box', None) is not None:
        raise ValueError(
            f"{owner}: resolution='original' compares each map with its "
            f'whole image, but the samples are crops (box '
            f"{sample.get('box_id', '?')} of {img_path!r}, e.g. of "
            "BoxCropDataset); use resolution='input'")
    ori_shape = sample.get('ori_shape', None)
    if ori_shape is None:
        raise KeyError(
            f"{owner}: resolution='original' needs 'ori_shape' in the "
            f'metainfo of the data samples (image {img_path!r}); add it to '
            "PackAnomalyInputs' meta_keys")
    ori_shape = tuple(int(s) for s in ori_shape)[:2]
    mask_path = sample.get('mask_path', None)
    mask = (mask != 0).cpu().numpy()  # (h, w) bool
    if mask_path is None and mask.any():
        raise ValueError(
            f"{owner}: resolution='original' reads masks from "
            f"'mask_path', but image {img_path!r} has anomalous gt_mask "
            "pixels and no mask_path; use resolution='input' or add "
            "'mask_path' to PackAnomalyInputs' meta_keys")
    threshold = mask_threshold
    if threshold is None:
        threshold = sample.get('mask_threshold', None)
    amap = amap.to(torch.float32).cpu().numpy().copy()  # (h, w)
    # input-size mask, only to place bins on the anomalous scores
    hint = np.packbits(mask) if mask.shape == amap.shape else None
    return dict(anomaly_map=amap, mask_hint=hint, img_path=img_path,
                mask_path=None if mask_path is None else str(mask_path),
                ori_shape=ori_shape, mask_threshold=threshold)


# at most this many stored scores are sorted to place the bin edges
_EDGE_SAMPLE = 2**22


def original_edges(results: List[dict], num_bins: int, owner: str) -> np.ndarray:
    """Pass 1: bin thresholds from the stored input-size maps.

    Bilinear upsampling takes convex combinations, so the full-size scores
    lie in the range of the stored ones.

    Args:
        results: the metric's entries (``anomaly_map`` (h, w) float32,
            ``mask_hint`` packed input-size mask or None, ``img_path``).
        num_bins: about how many bins.
        owner: how errors name the metric.

    Returns:
        Ascending thresholds.
    """
    total = sum(r['anomaly_map'].size for r in results)
    step = -(-total // _EDGE_SAMPLE)  # ceil: keep at most _EDGE_SAMPLE
    vmin, vmax = np.inf, -np.inf
    values, pos_values = [], []
    for i, r in enumerate(results):
        amap = r['anomaly_map']  # (h, w) float32
        if not np.isfinite(amap).all():
            what = 'NaN' if np.isnan(amap).any() else 'infinite values'
            raise ValueError(
                f'{owner}: {what} in anomaly_map of {r["img_path"]!r}; '
                "resolution='original' needs finite maps")
        vmin, vmax = min(vmin, amap.min()), max(vmax, amap.max())
        flat = amap.reshape(-1)  # (h * w,)
        values.append(flat[i % step::step])
        if r['mask_hint'] is not None:
            hint = np.unpackbits(r['mask_hint'], count=flat.size)
            pos_values.append(flat[hint.view(bool)][i % step::step])
    pos_values = (np.concatenate(pos_values) if pos_values else
                  np.empty(0, dtype=np.float32))
    return bin_edges(np.concatenate(values), pos_values, float(vmin), float(vmax), num_bins)


def original_size_counts(results: List[dict], num_bins: int, owner: str) -> BinnedCounts:
    """Pass 2: per-bin counts of every image at its original size.

    Args:
        results: the metric's entries (also ``ori_shape``, ``mask_path``
            (None: an all-normal image) and ``mask_threshold``).
        num_bins: about how many bins.
        owner: how errors name the metric.

    Returns:
        The accumulated counts.

    Raises:
        ValueError: a mask's size differs from its image's ``ori_shape``.
    """
    counts = BinnedCounts(original_edges(results, num_bins, owner))
    for r in results:
        shape = r['ori_shape']
        amap = F.interpolate(
            torch.from_numpy(r['anomaly_map'])[None, None], size=shape,
            mode='bilinear', align_corners=False)[0, 0].numpy()  # (H, W)
        if r['mask_path'] is None:
            mask = np.zeros(shape, dtype=bool)  # (H, W)
        else:
            mask = read_mask(r['mask_path'], r['mask_threshold']) != 0
            if mask.shape != shape:
                raise ValueError(
                    f'{owner}: mask {r["mask_path"]!r} is '
                    f'{mask.shape[0]}x{mask.shape[1]} (HxW) but the '
                    f'ori_shape of its image {r["img_path"]!r} is '
                    f'{shape[0]}x{shape[1]}')
        counts.add(amap, mask)
    return counts


def original_size_metrics(results: List[dict], metrics: Sequence[str], fpr_limit: float,
                          num_bins: int, owner: str
                          ) -> Optional[Tuple[Dict[str, float], Dict[str, float], int]]:
    """The binned metrics at the images' original sizes (both passes).

    Args:
        results: the entries of :func:`original_entry`, every rank's.
        metrics: the metric names to compute.
        fpr_limit: AUPRO's FPR integration limit.
        num_bins: about how many score bins.
        owner: how errors name the metric.

    Returns:
        ``(values, bounds on their error, number of bins)``, or None when no
        mask has an anomalous pixel.
    """
    counts = original_size_counts(results, num_bins, owner)
    if counts.pos.sum() == 0:
        return None
    out, bounds = binned_metrics(counts, metrics, fpr_limit)
    return ({m: out[m] for m in metrics}, {m: bounds[m] for m in metrics}, counts.edges.size)
