"""Pixel counts at the images' original sizes, one image at a time.

The two passes of ``PixelMetric(resolution='original')`` over the stored
input-size maps: :func:`original_edges` places the score bins,
:func:`original_size_counts` upsamples each map to its image's size, reads
its mask at native size and adds both to the per-bin counts of
:class:`~anomaly_plugin.evaluation.binned.BinnedCounts`.
"""
from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from anomaly_plugin.datasets.image_io import read_mask

from .binned import BinnedCounts, bin_edges

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
