"""Histogram (binned) pixel metrics with a computed bound on their error.

Used by :class:`~anomaly_plugin.evaluation.PixelMetric` with
``resolution='original'``, where the pixels of the whole test set at the
images' own sizes are too many to sort. The scores are cut by ascending
thresholds ``e_0 < e_1 < ... < e_(B-1)`` into bins ``[e_b, e_(b+1))`` (the
last one open above, the first one also holding anything below ``e_0``), and
images are added one at a time: per bin the normal pixel count, the
anomalous pixel count, and the per-region overlap mass
``sum over regions of (region pixels in the bin) / (region area)``.

The cumulative sums from the top give, at every threshold ``e_b``, exactly
the counts (and PRO) of the exact curves of :mod:`.functional` and
:mod:`.pro` at that threshold (``score >= e_b``); the binned curve is the
exact curve sampled at these thresholds, plus (0, 0). AUROC, AP, F1-max and
AUPRO are then computed with the exact functions' own conventions (AUROC and
AUPRO by the trapezoid rule, AUPRO interpolated at the FPR limit and divided
by it; AP as ``sum dRecall * precision``; F1-max as the maximum over the
thresholds), treating the pixels of one bin as tied.

Error bounds. Between two consecutive thresholds (one bin; ``lo``/``hi``
mark the curve point at the bin's upper/lower edge, i.e. fewer/more pixels
predicted anomalous) the exact curve is a monotone path inside the box
spanned by the two binned points, so with ``P`` anomalous and ``N`` normal
pixels, ``R`` regions, counts ``TP``/``FP`` and ``d* = *_hi - *_lo``:

- AUROC: the exact area over the bin lies between ``dFPR * TPR_lo`` and
  ``dFPR * TPR_hi``, the trapezoid in the middle:
  ``|AUROC_binned - AUROC_exact| <= 1/2 * sum_b dFPR_b * dTPR_b``.
- AUPRO (limit ``L``): for the bins with ``FPR_lo < L`` let
  ``w = min(FPR_hi, L) - FPR_lo`` (the part below the limit); the exact area
  lies in ``[w * PRO_lo, w * PRO_hi]``, the interpolated trapezoid at
  ``w * (PRO_lo + dPRO * w / (2 dFPR))``, so
  ``|AUPRO_binned - AUPRO_exact| <= sum_b w_b * dPRO_b * (1 - w_b / (2 dFPR_b)) / L``
  (``= 1/2 dFPR dPRO / L`` for bins wholly below the limit).
- AP: the exact thresholds inside a bin that add anomalous pixels have
  ``TP_lo + 1 <= TP <= TP_hi`` and ``FP_lo <= FP <= FP_hi``, so their
  precision lies in ``[p_min, p_max] = [(TP_lo + 1) / (TP_lo + 1 + FP_hi),
  TP_hi / (TP_hi + FP_lo)]``; the binned AP uses ``p_b = TP_hi / (TP_hi +
  FP_hi)`` in that range for the same recall step ``dTP / P``:
  ``|AP_binned - AP_exact| <= sum_b dTP_b / P * max(p_b - p_min, p_max - p_b)``.
- F1-max: every binned point is a point of the exact curve, so the binned
  value is a lower bound; ``2 TP / (TP + FP + P)`` grows with ``TP`` and
  falls with ``FP``, so inside a bin it is at most
  ``2 TP_hi / (TP_hi + FP_lo + P)``:
  ``0 <= F1max_exact - F1max_binned <= max_b 2 TP_hi / (TP_hi + FP_lo + P)
  - F1max_binned`` (over the bins with ``dTP > 0``).

A bin whose pixels all have one score is one group of tied scores of the
exact curve, a single straight segment: its binned segment is exact, so the
sums and the maximum run over the bins holding two or more distinct scores
only (the smallest and largest score of each bin are tracked).

"Exact" means the functions of :mod:`.functional` and :mod:`.pro` applied to
the same pixels; the bounds hold up to floating-point rounding (about
1e-12). They hold for any choice of thresholds; :func:`bin_edges` chooses them
so that they are small (dense where the pixels, and the anomalous pixels,
are dense).
"""
from typing import Dict, Sequence, Tuple

import numpy as np

from .functional import Curve, ap_from_curve, auroc_from_curve, f1_from_curve
from .pro import _aupro_from_rates, label_regions

__all__ = ['bin_edges', 'BinnedCounts', 'binned_metrics']


def bin_edges(values: np.ndarray, pos_values: np.ndarray, vmin: float,
              vmax: float, num_bins: int) -> np.ndarray:
    """Thresholds for binned metrics: quantiles mixed with a uniform grid.

    A quarter of ``num_bins`` each: a uniform grid over ``[vmin, vmax]``,
    quantiles of ``values``, ranks of ``values`` spaced geometrically towards
    the top (``m - 2^t``: fine where the anomalous pixels usually are) and
    quantiles of ``pos_values`` (when empty, its share goes to the top
    ranks). Duplicates are merged.

    Args:
        values: (m,) finite float32 sample of all scores, m > 0.
        pos_values: (p,) finite float32 sample of the scores of anomalous
            pixels (may be empty).
        vmin: smallest score; the first threshold.
        vmax: largest score.
        num_bins: about how many thresholds to make (at most this many).

    Returns:
        (B,) float32 ascending distinct thresholds, ``B <= num_bins``, the
        first one ``vmin``.
    """
    quarter = max(num_bins // 4, 1)
    values = np.sort(values.astype(np.float32, copy=False))  # (m,)
    m = values.size
    parts = [np.linspace(vmin, vmax, max(num_bins - 3 * quarter, 1),
                         dtype=np.float64).astype(np.float32),
             np.array([vmin], dtype=np.float32),
             values[np.linspace(0, m - 1, quarter).astype(np.int64)]]
    num_top = quarter if pos_values.size else 2 * quarter
    steps = np.exp2(np.linspace(0.0, np.log2(m), num_top))  # 1 .. m
    parts.append(values[np.clip(m - steps, 0, m - 1).astype(np.int64)])
    if pos_values.size:
        pos_sorted = np.sort(pos_values.astype(np.float32, copy=False))
        parts.append(pos_sorted[np.linspace(0, pos_sorted.size - 1,
                                            quarter).astype(np.int64)])
    edges = np.unique(np.concatenate(parts))  # (B,) ascending
    return edges[edges >= np.float32(vmin)]


class BinnedCounts:
    """Per-bin pixel counts and PRO mass, accumulated image by image.

    Each image's scores are sorted (per class) and cut at the thresholds
    with a binary search of the thresholds in the sorted scores, which is
    several times faster than searching every score among the thresholds.

    Args:
        edges: (B,) ascending float32 thresholds (see :func:`bin_edges`).

    Attributes:
        neg: (B,) int64 normal pixel count per bin.
        pos: (B,) int64 anomalous pixel count per bin.
        pro: (B,) float64 sum over regions of the region's pixels in the bin
            divided by the region's area.
        low: (B,) float32 smallest score per bin (``inf`` when empty).
        high: (B,) float32 largest score per bin (``-inf`` when empty).
        num_regions: number of 8-connected anomalous regions added.
    """

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = np.asarray(edges, dtype=np.float32)
        num = self.edges.size
        self.neg = np.zeros(num, dtype=np.int64)
        self.pos = np.zeros(num, dtype=np.int64)
        self.pro = np.zeros(num, dtype=np.float64)
        self.low = np.full(num, np.inf, dtype=np.float32)
        self.high = np.full(num, -np.inf, dtype=np.float32)
        self.num_regions = 0

    def _histogram(self, values: np.ndarray) -> np.ndarray:
        """Pixel count per bin of ascending ``values``; updates low/high.

        Bin ``b`` holds ``edges[b] <= value < edges[b + 1]``; bin 0 also
        what lies below ``edges[0]``, the last bin everything above.
        """
        bounds = np.empty(self.edges.size + 1, dtype=np.int64)  # (B + 1,)
        bounds[0], bounds[-1] = 0, values.size
        bounds[1:-1] = np.searchsorted(values, self.edges[1:], side='left')
        counts = np.diff(bounds)  # (B,)
        filled = np.flatnonzero(counts)  # (F,)
        np.minimum.at(self.low, filled, values[bounds[filled]])
        np.maximum.at(self.high, filled, values[bounds[filled + 1] - 1])
        return counts

    def add(self, scores: np.ndarray, mask: np.ndarray) -> None:
        """Add one image.

        Args:
            scores: (H, W) float32 anomaly map.
            mask: (H, W) bool ground truth of the same image (its 8-connected
                components are its regions).
        """
        flat = scores.reshape(-1).astype(np.float32, copy=False)  # (H * W,)
        anomalous = mask.reshape(-1)  # (H * W,) bool
        if not anomalous.any():
            self.neg += self._histogram(np.sort(flat))
            return
        self.neg += self._histogram(np.sort(flat[~anomalous]))
        regions = label_regions(mask)[anomalous]  # (p,) ids 1..R
        areas = np.bincount(regions)  # (R + 1,), areas[0] = 0
        order = np.argsort(flat[anomalous], kind='stable')  # (p,)
        counts = self._histogram(flat[anomalous][order])  # (B,)
        self.pos += counts
        bins = np.repeat(np.arange(counts.size), counts)  # (p,) sorted order
        self.pro += np.bincount(bins, weights=1.0 / areas[regions[order]],
                                minlength=counts.size)
        self.num_regions += areas.size - 1

def _points(counts: BinnedCounts) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative TP, FP and PRO mass at each threshold, highest first."""
    tps = np.cumsum(counts.pos[::-1])  # (B,)
    fps = np.cumsum(counts.neg[::-1])  # (B,)
    pro = np.cumsum(counts.pro[::-1])  # (B,)
    return tps, fps, pro


def binned_metrics(counts: BinnedCounts, names: Sequence[str],
                   fpr_limit: float = 0.3
                   ) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Metrics from binned counts, and bounds on their error.

    Args:
        counts: the accumulated counts of all images.
        names: subset of ``('AUROC', 'AP', 'F1max', 'AUPRO')``.
        fpr_limit: FPR integration limit of AUPRO, in (0, 1].

    Returns:
        ``(values, bounds)``: ``{name: value}`` and ``{name: bound}`` where
        ``|value - exact| <= bound`` for the exact value over the same pixels
        (see the module docstring for the formulas).

    Raises:
        ValueError: no anomalous or no normal pixel.
    """
    tps, fps, pro = _points(counts)
    curve = Curve(counts.edges[::-1], tps, fps, None)
    num_pos, num_neg = int(tps[-1]), int(fps[-1])
    # points with the (0, 0) start prepended; bin b spans lo[b] -> hi[b]
    tp = np.concatenate(([0], tps)).astype(np.float64)  # (B + 1,)
    fp = np.concatenate(([0], fps)).astype(np.float64)  # (B + 1,)
    tp_lo, tp_hi, fp_lo, fp_hi = tp[:-1], tp[1:], fp[:-1], fp[1:]  # (B,)
    dtp, dfp = tp_hi - tp_lo, fp_hi - fp_lo  # (B,)
    # bins with one distinct score are one tie group of the exact curve:
    # their segment is exact, only the others can deviate
    mixed = (counts.low < counts.high)[::-1]  # (B,) highest bin first
    values, bounds = {}, {}
    if 'AUROC' in names:
        values['AUROC'] = auroc_from_curve(curve)  # raises on one class
        bounds['AUROC'] = float(
            0.5 * np.dot(dfp * mixed, dtp) / (num_pos * num_neg))
    if 'AP' in names:
        values['AP'] = ap_from_curve(curve)
        hit = (dtp > 0) & mixed
        p_bin = tp_hi[hit] / (tp_hi[hit] + fp_hi[hit])
        p_min = (tp_lo[hit] + 1) / (tp_lo[hit] + 1 + fp_hi[hit])
        p_max = tp_hi[hit] / (tp_hi[hit] + fp_lo[hit])
        bounds['AP'] = float(np.dot(dtp[hit], np.maximum(
            p_bin - p_min, p_max - p_bin)) / num_pos)
    if 'F1max' in names:
        values['F1max'] = f1_from_curve(curve)[0]
        hit = (dtp > 0) & mixed
        f1_max = np.max(2 * tp_hi[hit] / (tp_hi[hit] + fp_lo[hit] + num_pos),
                        initial=values['F1max'])
        bounds['F1max'] = max(0.0, float(f1_max) - values['F1max'])
    if 'AUPRO' in names:
        if counts.num_regions == 0:
            raise ValueError('PRO is undefined without anomalous regions '
                             '(all masks are empty)')
        if num_neg == 0:
            raise ValueError('PRO is undefined without normal pixels '
                             '(all mask pixels are anomalous)')
        fpr = fp / num_neg  # (B + 1,)
        rate = np.concatenate(([0.0], pro / counts.num_regions))  # (B + 1,)
        values['AUPRO'] = _aupro_from_rates(fpr, rate, fpr_limit)
        f_lo, f_hi = fpr[:-1], fpr[1:]  # (B,)
        below = f_lo < fpr_limit
        width = np.minimum(f_hi[below], fpr_limit) - f_lo[below]
        dfpr = f_hi[below] - f_lo[below]
        frac = np.divide(width, dfpr, out=np.zeros_like(width),
                         where=dfpr > 0)
        dpro = np.diff(rate)[below] * mixed[below]
        bounds['AUPRO'] = float(
            np.sum(width * dpro * (1 - 0.5 * frac)) / fpr_limit)
    return values, bounds
