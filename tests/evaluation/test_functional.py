import numpy as np
import pytest
import torch
from skimage.measure import label as sk_label
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
)

from anomaly_plugin.evaluation import (
    aupro,
    auroc,
    average_precision,
    f1_max,
    f1_max_threshold,
    pro_curve,
)


def _random_binary(seed, n=2000, decimals=2):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    # rounding creates many tied scores, some shared by both classes
    scores = np.round(rng.random(n) + 0.4 * labels, decimals)
    return labels, scores


def _sk_f1_max(labels, scores):
    precision, recall, _ = precision_recall_curve(labels, scores)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom),
                   where=denom > 0)
    return f1.max()


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('decimals', [1, 2, 6])
def test_binary_metrics_match_sklearn(seed, decimals):
    labels, scores = _random_binary(seed, decimals=decimals)
    assert auroc(labels, scores) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12)
    assert f1_max(labels, scores) == pytest.approx(
        _sk_f1_max(labels, scores), abs=1e-12)


def test_torch_and_numpy_inputs_agree():
    labels, scores = _random_binary(3)
    labels_t = torch.from_numpy(labels.astype(np.int64)).reshape(40, 50)
    scores_t = torch.from_numpy(scores.astype(np.float32)).reshape(40, 50)
    scores32 = scores.astype(np.float32)
    for fn in (auroc, average_precision, f1_max):
        expected = fn(labels, scores32)
        assert fn(labels_t, scores_t) == pytest.approx(expected, abs=1e-12)
        assert fn(labels.astype(np.uint8), scores32) == pytest.approx(
            expected, abs=1e-12)
    assert auroc(labels_t, scores_t) == pytest.approx(
        roc_auc_score(labels, scores32), abs=1e-12)
    assert isinstance(auroc(labels_t, scores_t), float)


def test_f1_max_threshold_reproduces_f1():
    labels, scores = _random_binary(4)
    f1, threshold = f1_max_threshold(labels, scores)
    pred = scores >= threshold
    tp = np.sum(pred & labels)
    fp = np.sum(pred & ~labels)
    fn = np.sum(~pred & labels)
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(f1, abs=1e-12)
    assert f1 == pytest.approx(_sk_f1_max(labels, scores), abs=1e-12)
    assert threshold in scores


def test_small_hand_computed_values():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert auroc(labels, scores) == pytest.approx(0.75)
    # thresholds 0.8 (P=1, R=.5), 0.4 (P=.5), 0.35 (P=2/3, R=1)
    assert average_precision(labels, scores) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3)
    assert f1_max_threshold(labels, scores) == pytest.approx((0.8, 0.35))
    # all scores tied: the ROC curve is the diagonal
    assert auroc(labels, np.zeros(4)) == pytest.approx(0.5)
    assert average_precision(labels, np.zeros(4)) == pytest.approx(0.5)
    # perfect ranking
    assert auroc(labels, labels * 2.0) == 1.0
    assert f1_max(labels, labels * 2.0) == 1.0


@pytest.mark.parametrize('fn', [auroc, average_precision, f1_max])
def test_binary_bad_inputs(fn):
    with pytest.raises(ValueError, match='one class'):
        fn(np.ones(5, dtype=int), np.arange(5.0))
    with pytest.raises(ValueError, match='one class'):
        fn(np.zeros(5, dtype=bool), np.arange(5.0))
    with pytest.raises(ValueError, match=r'\(4,\) and \(5,\)'):
        fn(np.array([0, 1, 0, 1]), np.arange(5.0))
    with pytest.raises(ValueError, match='NaN'):
        fn(np.array([0, 1, 0]), np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match='binary'):
        fn(np.array([0, 2, 1]), np.arange(3.0))
    with pytest.raises(ValueError, match='empty'):
        fn(np.array([], dtype=int), np.array([]))


# --------------------------------------------------------------------------
# AUPRO
# --------------------------------------------------------------------------
def _reference_aupro(masks, maps, fpr_limit=0.3):
    """Slow, direct PRO curve: one binarisation per distinct threshold."""
    masks = masks.astype(bool)
    regions = []  # (image index, (H, W) region mask)
    for img, mask in enumerate(masks):
        lab = sk_label(mask, connectivity=2)  # 8-connectivity
        regions += [(img, lab == k) for k in range(1, lab.max() + 1)]
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        pros.append(np.mean([np.sum(pred[i] & r) / r.sum() for i, r in regions]))
        fprs.append(np.sum(pred & normal) / normal.sum())
    x, y = np.array(fprs), np.array(pros)
    beyond = np.flatnonzero(x > fpr_limit)
    if beyond.size:
        i = beyond[0]
        y_lim = y[i - 1] + (y[i] - y[i - 1]) * (fpr_limit - x[i - 1]) / (
            x[i] - x[i - 1])
        x = np.append(x[:i], fpr_limit)
        y = np.append(y[:i], y_lim)
    return np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / fpr_limit


def _random_maps(seed, n=4, size=32, levels=20):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for img in range(n):
        for _ in range(rng.integers(1, 4)):  # 1..3 blobs per image
            y, x = rng.integers(0, size - 8, 2)
            h, w = rng.integers(1, 8, 2)
            masks[img, y:y + h, x:x + w] = 1
    # pairs touching only by a corner: one region under 8-connectivity
    masks[0, 30, 0] = masks[0, 31, 1] = 1
    masks[1, 0, 31] = masks[1, 1, 30] = 1
    noise = rng.random(masks.shape)
    maps = np.round((noise + 0.6 * masks) * levels) / levels  # few thresholds
    return masks, maps


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('fpr_limit', [0.3, 0.05, 1.0])
def test_aupro_matches_reference(seed, fpr_limit):
    masks, maps = _random_maps(seed)
    expected = _reference_aupro(masks, maps, fpr_limit)
    assert aupro(masks, maps, fpr_limit) == pytest.approx(expected, abs=1e-10)
    # float32 torch input and a list of per-image maps give the same value
    maps32 = maps.astype(np.float32)
    expected32 = _reference_aupro(masks, maps32, fpr_limit)
    assert aupro(torch.from_numpy(masks), torch.from_numpy(maps32),
                 fpr_limit) == pytest.approx(expected32, abs=1e-10)
    assert aupro(list(masks), list(maps32), fpr_limit) == pytest.approx(
        expected32, abs=1e-10)


def test_aupro_single_region_and_2d_input():
    rng = np.random.default_rng(5)
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:9, 6:12] = True
    amap = np.round(rng.random((16, 16)) + 0.5 * mask, 1)
    expected = _reference_aupro(mask[None], amap[None])
    assert aupro(mask, amap) == pytest.approx(expected, abs=1e-10)
    assert aupro(mask[None], amap[None]) == pytest.approx(expected, abs=1e-10)


def test_aupro_perfect_and_tied_maps():
    masks, _ = _random_maps(2)
    assert aupro(masks, masks * 1.0) == pytest.approx(1.0)
    # every pixel tied: the curve jumps from (0, 0) to (1, 1)
    assert aupro(masks, np.zeros(masks.shape)) == pytest.approx(0.3 / 2)


def test_pro_curve_uses_8_connectivity():
    mask = np.zeros((6, 6), dtype=np.uint8)
    mask[0, 0] = mask[1, 1] = 1  # diagonal pair: one region of area 2
    mask[4, 4] = 1  # second region of area 1
    amap = np.zeros((6, 6))
    amap[0, 0] = 1.0
    fpr, pro, thresholds = pro_curve(mask, amap)
    # 8-connected: (1/2 + 0) / 2 regions; 4-connected would give 1/3
    assert pro[1] == pytest.approx(0.25)
    assert fpr[1] == 0.0
    assert thresholds[0] == np.inf and thresholds[1] == 1.0
    assert pro[-1] == pytest.approx(1.0) and fpr[-1] == pytest.approx(1.0)


def test_regions_do_not_connect_across_images():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 3, 3] = True  # would touch masks[1, 0, 0] if stacked in 3-D
    masks[1, 0, 0] = masks[1, 0, 1] = True
    maps = np.zeros((2, 4, 4))
    maps[0, 3, 3] = 1.0
    _, pro, _ = pro_curve(masks, maps)
    assert pro[1] == pytest.approx(0.5)  # one of two regions fully covered


def test_aupro_bad_inputs():
    maps = np.random.default_rng(0).random((2, 8, 8))
    with pytest.raises(ValueError, match='anomalous regions'):
        aupro(np.zeros((2, 8, 8), dtype=bool), maps)
    with pytest.raises(ValueError, match='normal pixels'):
        aupro(np.ones((2, 8, 8), dtype=bool), maps)
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 2, 2] = True
    with pytest.raises(ValueError, match=r'\(2, 8, 8\) and \(2, 8, 9\)'):
        aupro(masks, np.zeros((2, 8, 9)))
    bad = maps.copy()
    bad[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        aupro(masks, bad)
    with pytest.raises(ValueError, match='fpr_limit'):
        aupro(masks, maps, fpr_limit=0)
    with pytest.raises(ValueError, match='binary'):
        aupro(masks * 255, maps)
