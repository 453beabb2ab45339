"""The packed-key sort behind every metric against numpy's argsort."""
import numpy as np
import pytest

from anomaly_plugin.evaluation.functional import sort_with_targets, threshold_curve
from anomaly_plugin.evaluation.pro import pro_curve_counts


def _scores(rng, n):
    s = rng.standard_normal(n).astype(np.float32)
    s[:50] = 0.0
    s[50:100] = np.float32(2.5)  # ties
    s[100:110] = np.float32(-1e-30)  # tiny negatives next to 0
    s[110:115] = np.inf
    s[115:120] = -np.inf
    return rng.permutation(s)


@pytest.mark.parametrize('kind', ['bool', 'ids'])
def test_packed_sort_equals_lexsort(kind):
    rng = np.random.default_rng(0)
    scores = _scores(rng, 5000)
    targets = (rng.random(5000) < 0.1) if kind == 'bool' else \
        rng.integers(0, 2**31 - 1, 5000).astype(np.int64)
    a, b = sort_with_targets(scores, targets)
    order = np.lexsort((targets, scores))
    assert a.dtype == np.float32 and b.dtype == targets.dtype
    assert np.array_equal(a.view(np.uint32), scores[order].view(np.uint32))
    assert np.array_equal(b, targets[order])


def test_signed_zeros_and_other_dtypes():
    scores = np.array([0.0, -0.0, 1.0, -0.0, 0.0], dtype=np.float32)
    a, b = sort_with_targets(scores, np.array([1, 2, 3, 4, 5]))
    assert list(a) == [0, 0, 0, 0, 1] and sorted(b[:4]) == [1, 2, 4, 5] and b[4] == 3
    s64 = np.array([3.0, 1.0, 2.0])  # float64: numpy's argsort
    a, b = sort_with_targets(s64, np.array([0, 1, 0]))
    assert list(a) == [1.0, 2.0, 3.0] and list(b) == [1, 0, 0]
    a, b = sort_with_targets(np.array([1.0, 0.0], np.float32), np.array([-1, 0]))
    assert list(b) == [0, -1]  # negative ids cannot be packed: argsort


def test_curves_equal_the_argsort_path():
    rng = np.random.default_rng(1)
    scores = _scores(rng, 20000)
    regions = np.where(rng.random(20000) < 0.05, rng.integers(1, 30, 20000), 0).astype(np.int32)
    fast, normal = pro_curve_counts(regions, scores)
    slow, _ = pro_curve_counts(regions, scores.astype(np.float64))  # the argsort path
    assert np.array_equal(fast.thresholds, slow.thresholds)
    assert np.array_equal(fast.tps, slow.tps) and np.array_equal(fast.fps, slow.fps)
    # tied positives may be summed in another order
    np.testing.assert_allclose(fast.pos_cum[fast.tps], slow.pos_cum[slow.tps], rtol=1e-12)
    binary = threshold_curve(scores, regions > 0)
    assert np.array_equal(binary.tps, fast.tps) and np.array_equal(binary.fps, fast.fps)
