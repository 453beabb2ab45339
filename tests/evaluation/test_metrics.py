import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anomaly_plugin.evaluation import (
    ImageMetric,
    PixelMetric,
    aupro,
    auroc,
    average_precision,
    f1_max,
)
from anomaly_plugin.evaluation import metrics as metrics_module
from anomaly_plugin.registry import METRICS
from anomaly_plugin.structures import AnomalyDataSample


def _samples(seed=0, n=6, size=16, with_mask=True):
    """Predicted samples as the Evaluator hands them: ``to_dict()`` dicts."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        mask = np.zeros((size, size), dtype=np.uint8)
        if label:
            y, x = rng.integers(0, size - 5, 2)
            mask[y:y + 4, x:x + 5] = 1
        amap = np.round(rng.random((size, size)) + 0.5 * mask, 2)
        sample = AnomalyDataSample().set_gt_label(label)
        sample.set_pred_score(round(float(amap.max()) + 0.1 * label, 2))
        sample.set_anomaly_map(amap)
        if with_mask:
            sample.set_gt_mask(mask)
        out.append(sample.to_dict())
    return out


def _run(metric, samples, batch=4):
    for start in range(0, len(samples), batch):
        metric.process(None, samples[start:start + batch])
    return metric.evaluate(len(samples))


def test_image_metric_matches_functional():
    samples = _samples()
    labels = np.array([int(s['gt_label']) for s in samples])
    scores = np.array([float(s['pred_score']) for s in samples],
                      dtype=np.float32)
    metric = ImageMetric()
    metric.process(None, samples[:2])
    assert metric.results[0]['score'].dtype == np.float32
    assert metric.results[0]['label'].dtype == np.int8
    metric.results.clear()
    results = _run(metric, samples)
    assert set(results) == {'image/AUROC', 'image/AP', 'image/F1max'}
    assert results['image/AUROC'] == pytest.approx(auroc(labels, scores))
    assert results['image/AP'] == pytest.approx(
        average_precision(labels, scores))
    assert results['image/F1max'] == pytest.approx(f1_max(labels, scores))
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in results.values())


def test_pixel_metric_matches_functional():
    samples = _samples(1)
    masks = torch.stack([s['gt_mask'] for s in samples]).numpy()
    maps = torch.stack([s['anomaly_map'] for s in samples]).numpy()
    results = _run(PixelMetric(), samples)
    assert set(results) == {
        'pixel/AUROC', 'pixel/AP', 'pixel/F1max', 'pixel/AUPRO'}
    assert results['pixel/AUROC'] == pytest.approx(auroc(masks, maps))
    assert results['pixel/AP'] == pytest.approx(average_precision(masks, maps))
    assert results['pixel/F1max'] == pytest.approx(f1_max(masks, maps))
    assert results['pixel/AUPRO'] == pytest.approx(aupro(masks, maps))
    # the metric state is cleared after evaluate
    assert _run(PixelMetric(), samples) == results

    limited = _run(PixelMetric(metrics=['AUPRO'], fpr_limit=0.1), samples)
    assert set(limited) == {'pixel/AUPRO'}
    assert limited['pixel/AUPRO'] == pytest.approx(aupro(masks, maps, 0.1))
    subset = _run(PixelMetric(metrics='AP', prefix='px'), samples)
    assert subset == {'px/AP': pytest.approx(results['pixel/AP'])}


def test_pixel_metric_eval_size_resizes():
    samples = _samples(2, size=8)
    masks = torch.stack([s['gt_mask'] for s in samples])[:, None].float()
    maps = torch.stack([s['anomaly_map'] for s in samples])[:, None]
    maps_up = F.interpolate(maps, size=(12, 20), mode='bilinear',
                            align_corners=False)[:, 0].numpy()
    masks_up = F.interpolate(masks, size=(12, 20), mode='nearest')[:, 0]
    masks_up = masks_up.numpy() > 0.5
    metric = PixelMetric(eval_size=(12, 20))
    metric.process(None, samples)
    assert metric.results[0]['anomaly_map'].shape == (12, 20)
    assert metric.results[0]['anomaly_map'].dtype == np.float32
    assert metric.results[0]['gt_mask'].dtype == np.bool_
    results = metric.evaluate(len(samples))
    assert results['pixel/AUROC'] == pytest.approx(auroc(masks_up, maps_up))
    assert results['pixel/AUPRO'] == pytest.approx(aupro(masks_up, maps_up))
    assert results['pixel/AUROC'] != pytest.approx(
        auroc(masks.numpy(), maps.numpy()), abs=1e-9)


def test_pixel_metric_size_mismatch_needs_eval_size():
    sample = _samples(3, n=1)[0]
    sample['anomaly_map'] = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r'\(4, 4\).*\(16, 16\)'):
        PixelMetric().process(None, [sample])
    metric = PixelMetric(eval_size=8)
    metric.process(None, [sample])
    assert metric.results[0]['gt_mask'].shape == (8, 8)


def test_pixel_metric_without_masks(monkeypatch):
    logged = []
    monkeypatch.setattr(metrics_module, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs)))
    samples = _samples(4, with_mask=False)
    assert _run(PixelMetric(), samples) == {}
    assert len(logged) == 1 and 'gt_mask' in logged[0][0]
    assert logged[0][1]['level'] == logging.WARNING
    # image metrics do not need masks
    assert set(_run(ImageMetric(), samples)) == {
        'image/AUROC', 'image/AP', 'image/F1max'}


def test_pixel_metric_skips_samples_without_mask():
    samples = _samples(5)
    partial = [dict(s) for s in samples]
    for s in partial[:2]:
        del s['gt_mask']
    kept = samples[2:]
    masks = torch.stack([s['gt_mask'] for s in kept]).numpy()
    maps = torch.stack([s['anomaly_map'] for s in kept]).numpy()
    metric = PixelMetric()
    metric.process(None, partial)
    assert len(metric.results) == len(partial)  # one entry per sample
    results = metric.evaluate(len(partial))
    assert results['pixel/AUROC'] == pytest.approx(auroc(masks, maps))
    assert results['pixel/AUPRO'] == pytest.approx(aupro(masks, maps))


def test_metric_errors_and_registry():
    with pytest.raises(ValueError, match='IoU'):
        PixelMetric(metrics=['IoU'])
    with pytest.raises(ValueError, match='AUPRO'):
        ImageMetric(metrics=['AUPRO'])
    with pytest.raises(ValueError, match='fpr_limit'):
        PixelMetric(fpr_limit=1.5)
    samples = [s for s in _samples(6) if int(s['gt_label']) == 1]
    metric = ImageMetric()
    metric.process(None, samples)
    with pytest.raises(ValueError, match='one class'):
        metric.evaluate(len(samples))
    samples = _samples(6)
    samples[0]['anomaly_map'][0, 0] = float('nan')
    metric = PixelMetric()
    metric.process(None, samples)
    with pytest.raises(ValueError, match='NaN in anomaly_map'):
        metric.evaluate(len(samples))
    metric = METRICS.build(dict(type='PixelMetric', eval_size=(4, 4)))
    assert isinstance(metric, PixelMetric) and metric.eval_size == (4, 4)
    assert isinstance(METRICS.build(dict(type='ImageMetric')), ImageMetric)


@pytest.mark.parametrize('names', [('AUROC', 'AP', 'F1max', 'AUPRO'), ('AUROC', 'AP')])
def test_pixel_metric_all_masks_empty_warns(monkeypatch, names):
    logged = []
    monkeypatch.setattr(metrics_module, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs)))
    samples = _samples(7)
    for s in samples:  # anomalous labels, but no anomalous mask pixel
        s['gt_mask'] = torch.zeros_like(s['gt_mask'])
    metric = PixelMetric(metrics=names)
    assert _run(metric, samples) == {}
    assert len(logged) == 1
    assert 'no ground-truth mask has an anomalous pixel' in logged[0][0]
    assert logged[0][1]['level'] == logging.WARNING
    assert metric.last_bounds == {}
    # the image metrics are still computed
    assert set(_run(ImageMetric(), samples)) == {
        'image/AUROC', 'image/AP', 'image/F1max'}


def test_image_metric_needs_both_classes():
    metric = ImageMetric()
    with pytest.raises(ValueError, match='no samples'):
        metric.compute_metrics([])
    samples = [s for s in _samples(8) if int(s['gt_label']) == 0]
    metric.process(None, samples)
    with pytest.raises(ValueError, match=r'one class only \(got 0 anomalous and 3 normal'):
        metric.evaluate(len(samples))


def test_pixel_metric_input_bounds_are_zero():
    metric = PixelMetric(metrics=['AUROC', 'AUPRO'])
    _run(metric, _samples(9))
    assert metric.last_bounds == {'AUROC': 0.0, 'AUPRO': 0.0}
