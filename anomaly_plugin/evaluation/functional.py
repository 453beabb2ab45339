"""Threshold-free anomaly detection metrics on numpy arrays or torch tensors.

All functions take the ground truth first and the scores second, like
scikit-learn. They are exact: every distinct score is a threshold, and tied
scores form one step of the curve. ``auroc`` and ``average_precision`` equal
scikit-learn's ``roc_auc_score`` and ``average_precision_score``.

Every metric is derived from one curve (:func:`threshold_curve`): the
scores are sorted once, and the true/false positive counts at every
threshold where a curve can bend are found by binary search. Peak memory is
about 10 bytes per input element (the sorted copy and the positive mask),
so pixel-level metrics of a whole test set (10^8 pixels) fit in a few GB.

Labels must be binary (bool, or numbers in {0, 1}). Metrics are undefined
when the labels hold one class only; they raise ``ValueError`` then, as they
do for NaN scores, empty inputs and mismatched shapes. The per-region overlap
metrics (``pro_curve``, ``aupro``) live in :mod:`.pro` and are re-exported here.
"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

__all__ = ['auroc', 'average_precision', 'f1_max', 'f1_max_threshold',
           # the shared curve helpers the metrics build on
           'Curve', 'threshold_curve', 'auroc_from_curve', 'ap_from_curve', 'f1_from_curve',
           'check_scores', 'check_binary']


class Curve(NamedTuple):
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
def to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def check_scores(scores: np.ndarray, fn: str, name: str) -> np.ndarray:
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


def check_binary(labels: np.ndarray, fn: str, name: str) -> np.ndarray:
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


def check_shapes(a: np.ndarray, b: np.ndarray, fn: str, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f'{fn}: {names} must have the same shape, got {a.shape} and '
            f'{b.shape}')
    if a.size == 0:
        raise ValueError(f'{fn}: empty input')


def _prepare_binary(labels: ArrayLike, scores: ArrayLike,
                    fn: str) -> Tuple[np.ndarray, np.ndarray]:
    """Validate and flatten ``labels`` and ``scores``."""
    labels, scores = to_numpy(labels), to_numpy(scores)
    check_shapes(labels, scores, fn, 'labels and scores')
    labels = check_binary(labels.reshape(-1), fn, 'labels')
    scores = check_scores(scores.reshape(-1), fn, 'scores')
    return labels, scores


# --------------------------------------------------------------------------
# shared sorted pass
# --------------------------------------------------------------------------
def threshold_curve(scores: np.ndarray,
                    targets: np.ndarray,
                    weights: Optional[np.ndarray] = None) -> Curve:
    """Cumulative positive/negative counts at every distinct score.

    Only the thresholds where a curve can bend are returned: those that add
    positives, the one just above each of them, and the lowest. Positives
    are few in pixel maps, so the counts come from the sorted scores by
    binary search at those thresholds alone: one sort of the scores (numpy's
    vectorised sort; 38.7 M float32 scores in well under a second here) and
    no full-length cumulative arrays.

    Args:
        scores: (n,) float scores without NaN.
        targets: (n,) bool labels, or non-negative integer ids where 0 marks
            a negative element and any other id a positive one.
        weights: optional float table indexed by target id; the weight of
            each positive element, summed cumulatively into ``pos_cum``.

    Returns:
        Curve over the distinct scores, highest score first.
    """
    n = scores.size
    positive = targets if targets.dtype == np.bool_ else targets != 0  # (n,)
    pos_scores = scores[positive]  # (P,)
    pos_ids = targets[positive] if weights is not None else None
    del positive
    ascending = np.sort(scores)  # (n,)
    pos_order = np.argsort(pos_scores, kind='stable')[::-1]  # positives, highest first
    pos_sorted = pos_scores[pos_order[::-1]]  # (P,) ascending
    # thresholds: each distinct positive score, the next higher score above
    # it (the last of a run adding negatives only), and the lowest score
    pos_values = np.unique(pos_scores)  # (G,) ascending
    above = np.searchsorted(ascending, pos_values, side='right')  # (G,)
    candidates = [pos_values, ascending[above[above < n]], ascending[:1]]
    thresholds = np.unique(np.concatenate(candidates))[::-1]  # (M,) descending
    count_dtype = np.int32 if n < 2**31 else np.int64
    # elements with score >= t: those from t's first position in the sorted order on
    tps = pos_scores.size - np.searchsorted(pos_sorted, thresholds, side='left')
    fps = n - np.searchsorted(ascending, thresholds, side='left') - tps
    pos_cum = None
    if weights is not None:
        pos_cum = np.zeros(pos_ids.size + 1, dtype=np.float64)
        np.cumsum(weights[pos_ids[pos_order]], out=pos_cum[1:])
    return Curve(thresholds, tps.astype(count_dtype), fps.astype(count_dtype), pos_cum)


def _class_counts(curve: Curve, fn: str) -> Tuple[int, int]:
    num_pos, num_neg = int(curve.tps[-1]), int(curve.fps[-1])
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            f'{fn} is undefined when the labels hold one class only '
            f'(got {num_pos} anomalous and {num_neg} normal elements)')
    return num_pos, num_neg


def _positive_groups(curve: Curve) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of the thresholds that add positives, and how many they add.

    AUROC, AP and F1-max only change at these thresholds; for pixel maps
    they are few compared to all distinct scores.
    """
    dtp = np.diff(curve.tps, prepend=0)  # (K,)
    hit = np.flatnonzero(dtp)  # (H,)
    return hit, dtp[hit].astype(np.int64)


def auroc_from_curve(curve: Curve) -> float:
    num_pos, num_neg = _class_counts(curve, 'AUROC')
    hit, dtp = _positive_groups(curve)
    fps = curve.fps[hit].astype(np.int64)  # (H,)
    fps_prev = np.where(hit > 0, curve.fps[hit - 1], 0)  # (H,)
    # each positive beats the negatives scored lower and ties with the
    # negatives of its own group: twice the pair count, as exact integers
    twice_pairs = int(np.dot(dtp, 2 * num_neg - fps - fps_prev))
    return twice_pairs / (2 * num_pos * num_neg)


def ap_from_curve(curve: Curve) -> float:
    num_pos, _ = _class_counts(curve, 'average precision')
    hit, dtp = _positive_groups(curve)
    tps = curve.tps[hit].astype(np.float64)  # (H,)
    precision = tps / (tps + curve.fps[hit])
    return float(np.dot(dtp, precision) / num_pos)


def f1_from_curve(curve: Curve) -> Tuple[float, float]:
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
    return auroc_from_curve(threshold_curve(scores, labels))


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
    return ap_from_curve(threshold_curve(scores, labels))


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
    return f1_from_curve(threshold_curve(scores, labels))


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
    return f1_from_curve(threshold_curve(scores, labels))[0]


from .pro import aupro, pro_curve  # noqa: E402  (re-export; pro builds on this module)

__all__ += ['pro_curve', 'aupro']
