import numpy as np
import pytest

from anomaly_plugin.engine.calibration import compute_calibration
from anomaly_plugin.evaluation import f1_max_threshold


def _preds(with_anomalies, seed=0):
    rng = np.random.default_rng(seed)
    n = 20
    labels = np.zeros(n, np.int64)
    if with_anomalies:
        labels[::4] = 1
    maps = rng.random((n, 8, 8)).astype(np.float32)
    masks = np.zeros((n, 8, 8), np.uint8)
    masks[labels == 1, 2:5, 2:5] = 1
    maps[masks == 1] += 0.8
    scores = maps.reshape(n, -1).max(1)
    return dict(scores=scores, labels=labels, maps=maps, masks=masks)


def test_quantile_mode_uses_normal_scores_only():
    p = _preds(False)
    c = compute_calibration(p, mode='auto', image_quantile=0.9, pixel_quantile=0.95)
    assert c['image_threshold'] == pytest.approx(np.quantile(p['scores'], 0.9))
    assert c['pixel_threshold'] == pytest.approx(np.quantile(p['maps'], 0.95))
    assert c['image_min'] == pytest.approx(p['scores'].min())
    assert c['pixel_max'] == pytest.approx(p['maps'].max())


def test_f1_mode_on_labelled_split():
    p = _preds(True)
    c = compute_calibration(p, mode='auto')
    assert c['image_threshold'] == pytest.approx(
        f1_max_threshold(p['labels'], p['scores'])[1])
    assert c['pixel_threshold'] == pytest.approx(
        f1_max_threshold(p['masks'].ravel(), p['maps'].ravel())[1])


def test_manual_and_errors():
    p = _preds(False)
    c = compute_calibration(p, mode='manual', image_threshold=0.3, pixel_threshold=0.2)
    assert (c['image_threshold'], c['pixel_threshold']) == (0.3, 0.2)
    with pytest.raises(ValueError, match='manual'):
        compute_calibration(p, mode='manual')
    with pytest.raises(ValueError, match='f1'):
        compute_calibration(p, mode='f1')
    with pytest.raises(ValueError, match='mode'):
        compute_calibration(p, mode='best')


@pytest.mark.parametrize('where', ['score', 'map'])
@pytest.mark.parametrize('value', [np.nan, np.inf])
def test_non_finite_predictions_are_refused(where, value):
    p = _preds(False)
    p['paths'] = [f'img{i}.png' for i in range(len(p['scores']))]
    if where == 'score':
        p['scores'][3] = value
    else:
        p['maps'][3, 1, 1] = value
    with pytest.raises(ValueError, match='NaN or infinite.*img3.png'):
        compute_calibration(p, mode='quantile')
