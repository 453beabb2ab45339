"""threshold_curve against a written-out cumulative pass over every score."""
import numpy as np
import pytest

from anomaly_plugin.evaluation.functional import threshold_curve
from anomaly_plugin.evaluation.pro import pro_curve_counts


def reference_curve(scores, targets, weights=None):
    """Every distinct score's counts from a full sorted pass, then the
    thresholds kept: those adding positives, the one above each, the lowest."""
    order = np.argsort(-scores.astype(np.float64), kind='stable')
    s, t = scores[order], targets[order]
    pos = (t != 0)
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # last index of each tie group
    tps = np.cumsum(pos)[ends]
    fps = np.cumsum(~pos)[ends]
    adds = np.diff(tps, prepend=0) > 0
    keep = adds.copy()
    keep[:-1] |= adds[1:]
    keep[-1] = True
    pos_cum = None
    if weights is not None:
        pos_cum = np.concatenate([[0.0], np.cumsum(weights[t[pos]])])
    return s[ends][keep], tps[keep], fps[keep], pos_cum


def _scores(rng, n, dtype=np.float32):
    s = rng.standard_normal(n).astype(dtype)
    s[:50] = 0.0
    s[50:60] = -0.0  # equal to 0.0
    s[60:110] = 2.5  # ties
    s[110:115] = np.inf
    s[115:120] = -np.inf
    s[120:130] = rng.choice(s[:120], 10)  # more ties across positives and negatives
    return rng.permutation(s)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('kind', ['bool', 'ids'])
def test_curve_equals_the_full_pass(kind, dtype):
    rng = np.random.default_rng(0)
    for rate in (0.0005, 0.05, 0.5):
        scores = _scores(rng, 20000, dtype)
        hit = rng.random(20000) < rate
        targets = hit if kind == 'bool' else np.where(hit, rng.integers(1, 40, 20000), 0)
        curve = threshold_curve(scores, targets)
        thr, tps, fps, _ = reference_curve(scores, targets)
        assert np.array_equal(curve.thresholds, thr)
        assert np.array_equal(curve.tps, tps) and np.array_equal(curve.fps, fps)
        assert curve.tps.dtype == np.int32


def test_pro_weights_and_edge_cases():
    rng = np.random.default_rng(1)
    scores = _scores(rng, 20000)
    regions = np.where(rng.random(20000) < 0.05, rng.integers(1, 30, 20000), 0).astype(np.int32)
    curve, _ = pro_curve_counts(regions, scores)
    areas = np.bincount(regions)
    weights = np.zeros(areas.size)
    weights[1:] = 1.0 / (29 * areas[1:])
    thr, tps, fps, pos_cum = reference_curve(scores, regions, weights)
    assert np.array_equal(curve.tps, tps) and np.array_equal(curve.fps, fps)
    # tied positives may be summed in another order
    np.testing.assert_allclose(curve.pos_cum[curve.tps], pos_cum[tps], rtol=1e-12)
    assert curve.pos_cum[-1] == pytest.approx(1.0)
    # no positives: the lowest threshold only; every element a positive
    none = threshold_curve(scores, np.zeros(20000, bool))
    assert list(none.tps) == [0] and list(none.fps) == [20000]
    assert none.thresholds[0] == scores.min()
    every = threshold_curve(scores, np.ones(20000, bool))
    thr, tps, fps, _ = reference_curve(scores, np.ones(20000, bool))
    assert np.array_equal(every.tps, tps) and np.array_equal(every.fps, fps)
