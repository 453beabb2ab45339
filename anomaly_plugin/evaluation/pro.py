"""Per-region overlap (PRO) curve and AUPRO, as in the official MVTec AD evaluation.

Ground-truth regions are the 8-connected components of each mask; every
distinct score is a threshold; PRO is the mean over all regions of the
fraction of each region above the threshold, FPR is over all anomaly-free
pixels. Built on the sorted single pass of :mod:`.functional`.
"""
from typing import Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from .functional import (
    ArrayLike,
    Curve,
    check_binary,
    check_scores,
    check_shapes,
    threshold_curve,
    to_numpy,
)

__all__ = ['pro_curve', 'aupro', 'label_regions', 'pro_curve_counts', 'aupro_from_curve']


# --------------------------------------------------------------------------
# per-region overlap (PRO)
# --------------------------------------------------------------------------
# 8-connectivity inside each image, no connection between images
_STRUCTURE_2D = np.ones((3, 3), dtype=bool)
_STRUCTURE_3D = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE_3D[1] = True


def label_regions(masks: Union[np.ndarray, Sequence[np.ndarray]]) -> np.ndarray:
    """Give every 8-connected anomalous region of every image its own id.

    Args:
        masks: (N, H, W) or (H, W) bool array, or a sequence of (H, W) bool
            arrays (sizes may differ).

    Returns:
        (n,) int32 region ids of the flattened masks (in order), 0 for normal
        pixels and 1..R for the R regions.
    """
    if isinstance(masks, np.ndarray):
        regions, _ = ndimage.label(
            masks, structure=_STRUCTURE_3D if masks.ndim == 3 else _STRUCTURE_2D)
        return regions.reshape(-1).astype(np.int32, copy=False)
    out = np.empty(sum(m.size for m in masks), dtype=np.int32)
    start, offset = 0, 0
    for mask in masks:  # one call per image
        view = out[start:start + mask.size].reshape(mask.shape)
        count = ndimage.label(mask, structure=_STRUCTURE_2D, output=view)
        view[view > 0] += offset
        start, offset = start + mask.size, offset + count
    return out


def pro_curve_counts(regions: np.ndarray,
                      scores: np.ndarray) -> Tuple[Curve, int]:
    """Sorted pass with each region pixel weighted by 1 / (R * area)."""
    # bincount of the few region pixels only (over every pixel it costs seconds)
    areas = np.bincount(regions[regions != 0], minlength=1)  # (R + 1,), areas[0] = 0
    areas[0] = regions.size - areas.sum()  # normal pixels
    num_regions, num_normal = areas.size - 1, int(areas[0])
    if num_regions == 0:
        raise ValueError('PRO is undefined without anomalous regions '
                         '(all masks are empty)')
    if num_normal == 0:
        raise ValueError('PRO is undefined without normal pixels '
                         '(all mask pixels are anomalous)')
    weights = np.zeros(areas.size, dtype=np.float64)
    weights[1:] = 1.0 / (num_regions * areas[1:].astype(np.float64))
    return threshold_curve(scores, regions, weights), num_normal


def _partial_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under a curve with non-decreasing ``x`` up to ``limit``.

    The curve is linearly interpolated at ``x = limit``.
    """
    x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
    keep = x0 < limit
    x0, x1, y0, y1 = x0[keep], x1[keep], y0[keep], y1[keep]
    x1_clip = np.minimum(x1, limit)
    width = x1 - x0
    frac = np.divide(x1_clip - x0, width, out=np.ones_like(width),
                     where=width > 0)
    y1_clip = y0 + frac * (y1 - y0)
    return float(np.sum((y0 + y1_clip) * (x1_clip - x0)) / 2)


def aupro_from_curve(curve: Curve, num_normal: int,
                      fpr_limit: float) -> float:
    """AUPRO from the weighted curve of :func:`pro_curve_counts`."""
    # only the points up to the first one past the limit are needed
    stop = int(np.searchsorted(curve.fps, fpr_limit * num_normal,
                               side='right')) + 2
    fpr = np.concatenate(([0.0], curve.fps[:stop] / num_normal))
    pro = np.concatenate(([0.0], curve.pos_cum[curve.tps[:stop]]))
    return _aupro_from_rates(fpr, pro, fpr_limit)


def _aupro_from_rates(fpr: np.ndarray, pro: np.ndarray,
                      fpr_limit: float) -> float:
    """Normalised trapezoid area of a PRO curve up to ``fpr_limit``.

    Args:
        fpr: (K,) non-decreasing false positive rates, starting at 0.
        pro: (K,) PRO values at the same thresholds, starting at 0.
        fpr_limit: upper integration limit in (0, 1].

    Returns:
        The area up to ``fpr_limit`` (the curve linearly interpolated there)
        divided by ``fpr_limit``, at most 1.
    """
    # PRO sums float weights 1 / (R * area): clip the rounding excess above 1
    return min(1.0, _partial_area(fpr, pro, fpr_limit) / fpr_limit)


def _prepare_maps(masks: ArrayLike, anomaly_maps: ArrayLike,
                  fn: str) -> Tuple[Union[np.ndarray, list], np.ndarray]:
    """Validate masks/maps; return region-labelling input and flat scores."""
    if isinstance(masks, (list, tuple)) or isinstance(anomaly_maps,
                                                      (list, tuple)):
        if len(masks) != len(anomaly_maps):
            raise ValueError(f'{fn}: got {len(masks)} masks and '
                             f'{len(anomaly_maps)} anomaly maps')
        mask_list, score_list = [], []
        for i, (mask, amap) in enumerate(zip(masks, anomaly_maps)):
            mask, amap = to_numpy(mask), to_numpy(amap)
            check_shapes(mask, amap, fn, f'mask and anomaly map {i}')
            if mask.ndim != 2:
                raise ValueError(f'{fn}: mask {i} must be (H, W), got '
                                 f'{mask.shape}')
            mask_list.append(check_binary(mask, fn, 'masks'))
            score_list.append(amap.reshape(-1))
        if not mask_list:
            raise ValueError(f'{fn}: empty input')
        scores = np.concatenate(score_list)
        return mask_list, check_scores(scores, fn, 'anomaly maps')
    masks, anomaly_maps = to_numpy(masks), to_numpy(anomaly_maps)
    check_shapes(masks, anomaly_maps, fn, 'masks and anomaly maps')
    if masks.ndim not in (2, 3):
        raise ValueError(
            f'{fn}: masks must be (N, H, W) or (H, W), got {masks.shape}')
    masks = check_binary(masks, fn, 'masks')
    scores = check_scores(anomaly_maps.reshape(-1), fn, 'anomaly maps')
    return masks, scores


def pro_curve(masks: ArrayLike, anomaly_maps: ArrayLike
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-region overlap (PRO) against false positive rate, every threshold.

    Ground-truth regions are the 8-connected components of each image's
    mask. At threshold ``t``, PRO is the mean over all regions of the set of
    the fraction of the region's pixels with ``score >= t``; FPR is the
    fraction of all normal pixels of the set with ``score >= t``.

    Args:
        masks: (N, H, W) or (H, W) binary masks, or a sequence of (H, W)
            masks.
        anomaly_maps: anomaly maps of the same shape(s).

    Returns:
        ``(fpr, pro, thresholds)``, each (K + 1,): the curve starts at
        (0, 0) with threshold ``inf``, then follows the distinct scores in
        descending order. Of a run of scores held by normal pixels only
        (a horizontal stretch of the curve) only the lowest is listed.

    Raises:
        ValueError: no anomalous region or no normal pixel, shapes differ,
            masks are not binary or maps contain NaN.
    """
    masks, scores = _prepare_maps(masks, anomaly_maps, 'pro_curve')
    curve, num_normal = pro_curve_counts(label_regions(masks), scores)
    fpr = np.concatenate(([0.0], curve.fps / num_normal))
    pro = np.concatenate(([0.0], curve.pos_cum[curve.tps]))
    thresholds = np.concatenate(([np.inf], curve.thresholds))
    return fpr, pro, thresholds


def aupro(masks: ArrayLike, anomaly_maps: ArrayLike,
          fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to a false positive rate.

    Follows the MVTec AD evaluation: the PRO curve of :func:`pro_curve` is
    integrated with the trapezoid rule from FPR 0 to ``fpr_limit`` (linearly
    interpolated at the limit) and divided by ``fpr_limit``.

    Args:
        masks: (N, H, W) or (H, W) binary masks, or a sequence of (H, W)
            masks.
        anomaly_maps: anomaly maps of the same shape(s).
        fpr_limit: upper FPR integration limit in (0, 1].

    Returns:
        AUPRO in [0, 1].

    Raises:
        ValueError: as :func:`pro_curve`, or ``fpr_limit`` outside (0, 1].
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f'aupro: fpr_limit must be in (0, 1], got {fpr_limit}')
    masks, scores = _prepare_maps(masks, anomaly_maps, 'aupro')
    curve, num_normal = pro_curve_counts(label_regions(masks), scores)
    return aupro_from_curve(curve, num_normal, fpr_limit)
