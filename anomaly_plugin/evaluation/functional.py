"""Threshold-free anomaly detection metrics on numpy arrays or torch tensors.

All functions take the ground truth first and the scores second, like
scikit-learn. They are exact: every distinct score is a threshold, and tied
scores form one step of the curve. ``auroc`` and ``average_precision`` equal
scikit-learn's ``roc_auc_score`` and ``average_precision_score``.

Every metric is derived from one sorted pass over the scores
(:func:`_threshold_curve`): the scores are sorted once in descending order,
and the cumulative true/false positive counts are read at the last index of
each group of tied scores. Peak memory is about 20 bytes per input element
(mostly the int64 sort index), so pixel-level metrics of a whole test set
(10^8 pixels) fit in a few GB.

Labels must be binary (bool, or numbers in {0, 1}). Metrics are undefined
when the labels hold one class only; they raise ``ValueError`` then, as they
do for NaN scores, empty inputs and mismatched shapes.
"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy import ndimage

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

__all__ = [
    'auroc', 'average_precision', 'f1_max', 'f1_max_threshold', 'pro_curve',
    'aupro'
]


class _Curve(NamedTuple):
    """Cumulative counts at distinct thresholds, highest first.

    Thresholds inside runs that add negatives only are left out except the
    last of each run; the curves are straight there, so no metric changes.
    ``tps[k]``/``fps[k]`` count the positive/negative elements with
    ``score >= thresholds[k]``. With weights, ``pos_cum[j]`` sums the weights
    of the ``j`` highest-scored positives, so ``pos_cum[tps]`` is the
    cumulative weight at each threshold.
    """
    thresholds: np.ndarray  # (K,) descending distinct scores
    tps: np.ndarray  # (K,) int, non-decreasing
    fps: np.ndarray  # (K,) int, non-decreasing
    pos_cum: Optional[np.ndarray]  # (P + 1,) float64 or None


# --------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------
def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def _check_scores(scores: np.ndarray, fn: str, name: str) -> np.ndarray:
    """Return the scores as a float array (float32 kept), rejecting NaN."""
    if scores.dtype == np.float16:
        scores = scores.astype(np.float32)
    elif scores.dtype.kind in 'biu':
        scores = scores.astype(np.float64)
    elif scores.dtype.kind != 'f':
        raise ValueError(
            f'{fn}: {name} must be real numbers, got dtype {scores.dtype}')
    if np.isnan(scores).any():
        raise ValueError(f'{fn}: NaN in {name}')
    return scores


def _check_binary(labels: np.ndarray, fn: str, name: str) -> np.ndarray:
    """Return the labels as a bool array, requiring values in {0, 1}."""
    if labels.dtype == np.bool_:
        return labels
    if labels.dtype.kind in 'iu':
        bad = labels.min() < 0 or labels.max() > 1
    elif labels.dtype.kind == 'f':
        bad = not np.all((labels == 0) | (labels == 1))
    else:
        raise ValueError(
            f'{fn}: {name} must be bool or integers, got dtype {labels.dtype}')
    if bad:
        values = np.unique(labels)[:10]
        raise ValueError(
            f'{fn}: {name} must be binary (0 = normal, 1 = anomalous), '
            f'found values {values.tolist()}')
    return labels.astype(bool)


def _check_shapes(a: np.ndarray, b: np.ndarray, fn: str, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f'{fn}: {names} must have the same shape, got {a.shape} and '
            f'{b.shape}')
    if a.size == 0:
        raise ValueError(f'{fn}: empty input')


def _prepare_binary(labels: ArrayLike, scores: ArrayLike,
                    fn: str) -> Tuple[np.ndarray, np.ndarray]:
    """Validate and flatten ``labels`` and ``scores``."""
    labels, scores = _to_numpy(labels), _to_numpy(scores)
    _check_shapes(labels, scores, fn, 'labels and scores')
    labels = _check_binary(labels.reshape(-1), fn, 'labels')
    scores = _check_scores(scores.reshape(-1), fn, 'scores')
    return labels, scores


# --------------------------------------------------------------------------
# shared sorted pass
# --------------------------------------------------------------------------
def _threshold_curve(scores: np.ndarray,
                     targets: np.ndarray,
                     weights: Optional[np.ndarray] = None) -> _Curve:
    """Cumulative positive/negative counts at every distinct score.

    Args:
        scores: (n,) float scores without NaN.
        targets: (n,) bool labels, or non-negative integer ids where 0 marks
            a negative element and any other id a positive one.
        weights: optional float table indexed by target id; the weight of
            each positive element, summed cumulatively into ``pos_cum``.

    Returns:
        _Curve over the distinct scores, highest score first.
    """
    n = scores.size
    order = np.argsort(scores)  # (n,) ascending
    # gather with the contiguous index, then view in descending order
    sorted_scores = scores[order][::-1]
    sorted_targets = targets[order][::-1]
    del order
    # last index of each group of tied scores; boolean masks instead of
    # int64 indices keep memory at a few bytes per element
    is_end = np.empty(n, dtype=bool)
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=is_end[:-1])
    is_end[-1] = True
    thresholds = sorted_scores[is_end]  # (K,)
    del sorted_scores
    positive = (sorted_targets if sorted_targets.dtype == np.bool_ else
                sorted_targets != 0)  # (n,) own copy, modified below
    pos_ids = sorted_targets[positive] if weights is not None else None
    del sorted_targets
    # cumulative counts in place in one int buffer (np.cumsum with a dtype
    # would allocate a cast copy of the whole input)
    count_dtype = np.int32 if n < 2**31 else np.int64
    cum = positive.astype(count_dtype)  # (n,)
    np.cumsum(cum, out=cum)
    tps = cum[is_end]  # (K,)
    cum[...] = np.logical_not(positive, out=positive)  # negatives
    del positive
    np.cumsum(cum, out=cum)
    fps = cum[is_end]  # (K,)
    del cum, is_end
    # Inside a run of thresholds that add negatives only, every curve is a
    # straight horizontal line: keep the thresholds adding positives and the
    # last one before each of them (and the lowest one), drop the rest.
    adds_pos = np.empty(tps.size, dtype=bool)  # (K,)
    adds_pos[0] = tps[0] > 0
    np.greater(tps[1:], tps[:-1], out=adds_pos[1:])
    keep = adds_pos.copy()
    keep[:-1] |= adds_pos[1:]
    keep[-1] = True
    del adds_pos
    thresholds, tps, fps = thresholds[keep], tps[keep], fps[keep]  # (M,)
    pos_cum = None
    if weights is not None:
        pos_cum = np.zeros(pos_ids.size + 1, dtype=np.float64)
        np.cumsum(weights[pos_ids], out=pos_cum[1:])
    return _Curve(thresholds, tps, fps, pos_cum)


def _class_counts(curve: _Curve, fn: str) -> Tuple[int, int]:
    num_pos, num_neg = int(curve.tps[-1]), int(curve.fps[-1])
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            f'{fn} is undefined when the labels hold one class only '
            f'(got {num_pos} anomalous and {num_neg} normal elements)')
    return num_pos, num_neg


def _positive_groups(curve: _Curve) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of the thresholds that add positives, and how many they add.

    AUROC, AP and F1-max only change at these thresholds; for pixel maps
    they are few compared to all distinct scores.
    """
    dtp = np.diff(curve.tps, prepend=0)  # (K,)
    hit = np.flatnonzero(dtp)  # (H,)
    return hit, dtp[hit].astype(np.int64)


def _auroc_from_curve(curve: _Curve) -> float:
    num_pos, num_neg = _class_counts(curve, 'AUROC')
    hit, dtp = _positive_groups(curve)
    fps = curve.fps[hit].astype(np.int64)  # (H,)
    fps_prev = np.where(hit > 0, curve.fps[hit - 1], 0)  # (H,)
    # each positive beats the negatives scored lower and ties with the
    # negatives of its own group: twice the pair count, as exact integers
    twice_pairs = int(np.dot(dtp, 2 * num_neg - fps - fps_prev))
    return twice_pairs / (2 * num_pos * num_neg)


def _ap_from_curve(curve: _Curve) -> float:
    num_pos, _ = _class_counts(curve, 'average precision')
    hit, dtp = _positive_groups(curve)
    tps = curve.tps[hit].astype(np.float64)  # (H,)
    precision = tps / (tps + curve.fps[hit])
    return float(np.dot(dtp, precision) / num_pos)


def _f1_from_curve(curve: _Curve) -> Tuple[float, float]:
    num_pos, _ = _class_counts(curve, 'F1-max')
    # F1 drops at thresholds that add negatives only
    hit, _ = _positive_groups(curve)
    tps = curve.tps[hit].astype(np.float64)  # (H,)
    f1 = 2 * tps / (tps + curve.fps[hit] + num_pos)
    best = int(np.argmax(f1))
    return float(f1[best]), float(curve.thresholds[hit[best]])


# --------------------------------------------------------------------------
# image / pixel classification metrics
# --------------------------------------------------------------------------
def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve.

    Args:
        labels: binary ground truth of any shape (bool or 0/1 numbers).
        scores: anomaly scores of the same shape; higher = more anomalous.

    Returns:
        AUROC in [0, 1], equal to scikit-learn's ``roc_auc_score``.

    Raises:
        ValueError: labels hold one class only, shapes differ, input is
            empty, labels are not binary or scores contain NaN.
    """
    labels, scores = _prepare_binary(labels, scores, 'auroc')
    return _auroc_from_curve(_threshold_curve(scores, labels))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision, ``sum_k (R_k - R_(k-1)) * P_k`` over thresholds.

    Args:
        labels: binary ground truth of any shape (bool or 0/1 numbers).
        scores: anomaly scores of the same shape; higher = more anomalous.

    Returns:
        AP in [0, 1], equal to scikit-learn's ``average_precision_score``.

    Raises:
        ValueError: as :func:`auroc`.
    """
    labels, scores = _prepare_binary(labels, scores, 'average_precision')
    return _ap_from_curve(_threshold_curve(scores, labels))


def f1_max_threshold(labels: ArrayLike,
                     scores: ArrayLike) -> Tuple[float, float]:
    """Best F1 score over all thresholds, and the threshold reaching it.

    Args:
        labels: binary ground truth of any shape (bool or 0/1 numbers).
        scores: anomaly scores of the same shape; higher = more anomalous.

    Returns:
        ``(f1, threshold)``: predicting ``scores >= threshold`` as anomalous
        gives F1 score ``f1``. Among equal F1 values the highest threshold
        is returned.

    Raises:
        ValueError: as :func:`auroc`.
    """
    labels, scores = _prepare_binary(labels, scores, 'f1_max_threshold')
    return _f1_from_curve(_threshold_curve(scores, labels))


def f1_max(labels: ArrayLike, scores: ArrayLike) -> float:
    """Best F1 score over all thresholds (see :func:`f1_max_threshold`).

    Args:
        labels: binary ground truth of any shape (bool or 0/1 numbers).
        scores: anomaly scores of the same shape; higher = more anomalous.

    Returns:
        The maximal F1 score in [0, 1].

    Raises:
        ValueError: as :func:`auroc`.
    """
    labels, scores = _prepare_binary(labels, scores, 'f1_max')
    return _f1_from_curve(_threshold_curve(scores, labels))[0]


# --------------------------------------------------------------------------
# per-region overlap (PRO)
# --------------------------------------------------------------------------
# 8-connectivity inside each image, no connection between images
_STRUCTURE_2D = np.ones((3, 3), dtype=bool)
_STRUCTURE_3D = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE_3D[1] = True


def _label_regions(masks: Union[np.ndarray, Sequence[np.ndarray]]) -> np.ndarray:
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


def _pro_curve_counts(regions: np.ndarray,
                      scores: np.ndarray) -> Tuple[_Curve, int]:
    """Sorted pass with each region pixel weighted by 1 / (R * area)."""
    areas = np.bincount(regions)  # (R + 1,), areas[0] = normal pixels
    num_regions, num_normal = areas.size - 1, int(areas[0])
    if num_regions == 0:
        raise ValueError('PRO is undefined without anomalous regions '
                         '(all masks are empty)')
    if num_normal == 0:
        raise ValueError('PRO is undefined without normal pixels '
                         '(all mask pixels are anomalous)')
    weights = np.zeros(areas.size, dtype=np.float64)
    weights[1:] = 1.0 / (num_regions * areas[1:].astype(np.float64))
    return _threshold_curve(scores, regions, weights), num_normal


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


def _aupro_from_curve(curve: _Curve, num_normal: int,
                      fpr_limit: float) -> float:
    """AUPRO from the weighted curve of :func:`_pro_curve_counts`."""
    # only the points up to the first one past the limit are needed
    stop = int(np.searchsorted(curve.fps, fpr_limit * num_normal,
                               side='right')) + 2
    fpr = np.concatenate(([0.0], curve.fps[:stop] / num_normal))
    pro = np.concatenate(([0.0], curve.pos_cum[curve.tps[:stop]]))
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
            mask, amap = _to_numpy(mask), _to_numpy(amap)
            _check_shapes(mask, amap, fn, f'mask and anomaly map {i}')
            if mask.ndim != 2:
                raise ValueError(f'{fn}: mask {i} must be (H, W), got '
                                 f'{mask.shape}')
            mask_list.append(_check_binary(mask, fn, 'masks'))
            score_list.append(amap.reshape(-1))
        if not mask_list:
            raise ValueError(f'{fn}: empty input')
        scores = np.concatenate(score_list)
        return mask_list, _check_scores(scores, fn, 'anomaly maps')
    masks, anomaly_maps = _to_numpy(masks), _to_numpy(anomaly_maps)
    _check_shapes(masks, anomaly_maps, fn, 'masks and anomaly maps')
    if masks.ndim not in (2, 3):
        raise ValueError(
            f'{fn}: masks must be (N, H, W) or (H, W), got {masks.shape}')
    masks = _check_binary(masks, fn, 'masks')
    scores = _check_scores(anomaly_maps.reshape(-1), fn, 'anomaly maps')
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
    curve, num_normal = _pro_curve_counts(_label_regions(masks), scores)
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
    curve, num_normal = _pro_curve_counts(_label_regions(masks), scores)
    return _aupro_from_curve(curve, num_normal, fpr_limit)
