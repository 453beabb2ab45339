"""PixelMetric(resolution='original'): binned full-resolution metrics."""
import logging
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anomaly_plugin.evaluation import (
    PixelMetric,
    aupro,
    auroc,
    average_precision,
    f1_max,
)
from anomaly_plugin.evaluation import metrics as metrics_module
from anomaly_plugin.evaluation.binned import BinnedCounts, bin_edges, binned_metrics
from anomaly_plugin.structures import AnomalyDataSample

INPUT = 16
NAMES = ('AUROC', 'AP', 'F1max', 'AUPRO')


def _upsample(amap, shape):
    """(h, w) map -> (H, W) float32, as the metric does."""
    return F.interpolate(torch.as_tensor(amap, dtype=torch.float32)[None, None],
                         size=tuple(shape), mode='bilinear',
                         align_corners=False)[0, 0].numpy()


def _sample(tmp_path, index, mask, amap, label, write_mask=True, **meta):
    """A predicted sample dict with a native-size mask written to disk."""
    mask_path = None
    if write_mask:
        mask_path = str(tmp_path / f'mask_{index}.png')
        cv2.imwrite(mask_path, mask.astype(np.uint8) * 255)
    small = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None],
                          size=(INPUT, INPUT), mode='nearest')[0, 0]
    sample = AnomalyDataSample().set_gt_label(label)
    sample.set_gt_mask(small)  # (16, 16), nearest neighbour
    sample.set_anomaly_map(amap)  # (16, 16)
    sample.set_pred_score(float(amap.max()))
    info = dict(img_path=f'img_{index}.png', ori_shape=mask.shape,
                img_shape=(INPUT, INPUT))
    if mask_path is not None:
        info['mask_path'] = mask_path
    info.update(meta)
    sample.set_metainfo(info)
    return sample.to_dict()


def _dataset(tmp_path, seed=0, decimals=None):
    """Anomalous images of different native sizes, normal ones in between.

    Returns:
        samples (dicts), native masks (bool) and upsampled maps (float32).
    """
    rng = np.random.default_rng(seed)
    shapes = [(37, 53), (40, 30), (37, 53), (23, 61), (37, 53), (16, 16)]
    samples, masks, maps = [], [], []
    for i, shape in enumerate(shapes):
        label = i % 2 == 0
        mask = np.zeros(shape, dtype=bool)
        if label:
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 6)
                mask[y:y + rng.integers(1, 7), x:x + rng.integers(1, 7)] = True
        small = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None],
                              size=(INPUT, INPUT), mode='bilinear',
                              align_corners=False)[0, 0].numpy()
        amap = rng.random((INPUT, INPUT)) + 1.5 * small  # (16, 16)
        if decimals is not None:
            amap = np.round(amap, decimals)  # ties, also after upsampling
        amap = amap.astype(np.float32)
        # normal images have no mask file
        samples.append(_sample(tmp_path, i, mask, amap, int(label),
                               write_mask=label))
        masks.append(mask)
        maps.append(_upsample(amap, shape))
    return samples, masks, maps


def _exact(masks, maps, fpr_limit=0.3):
    labels = np.concatenate([m.reshape(-1) for m in masks])
    scores = np.concatenate([a.reshape(-1) for a in maps])
    return dict(AUROC=auroc(labels, scores),
                AP=average_precision(labels, scores),
                F1max=f1_max(labels, scores),
                AUPRO=aupro(masks, maps, fpr_limit))


def _evaluate(metric, samples, batch=4):
    for start in range(0, len(samples), batch):
        metric.process(None, samples[start:start + batch])
    return metric.evaluate(len(samples))


@pytest.mark.parametrize('decimals', [None, 1])
@pytest.mark.parametrize('fpr_limit', [0.3, 0.05, 1.0])
def test_original_within_bound_of_exact(tmp_path, decimals, fpr_limit):
    samples, masks, maps = _dataset(tmp_path, seed=1, decimals=decimals)
    exact = _exact(masks, maps, fpr_limit)
    for num_bins in (16, 64, 2**17):
        metric = PixelMetric(resolution='original', num_bins=num_bins,
                             fpr_limit=fpr_limit)
        results = _evaluate(metric, samples)
        assert set(results) == {f'pixel/{m}' for m in NAMES}
        assert set(metric.last_bounds) == set(NAMES)
        for name in NAMES:
            value, bound = results[f'pixel/{name}'], metric.last_bounds[name]
            assert 0 <= value <= 1 and bound >= 0
            assert abs(value - exact[name]) <= bound + 1e-10, (name, num_bins)
        if num_bins == 2**17:
            assert max(metric.last_bounds.values()) < 1e-3
            for name in NAMES:
                assert results[f'pixel/{name}'] == pytest.approx(
                    exact[name], abs=1e-3)
    # the binned F1-max is a point of the exact curve
    assert results['pixel/F1max'] <= exact['F1max'] + 1e-12


def test_process_keeps_input_size_entries(tmp_path):
    samples, _, _ = _dataset(tmp_path)
    metric = PixelMetric(resolution='original')
    metric.process(None, samples)
    entry = metric.results[0]
    assert entry['anomaly_map'].shape == (INPUT, INPUT)
    assert entry['anomaly_map'].dtype == np.float32
    assert entry['mask_hint'].nbytes == INPUT * INPUT // 8
    assert entry['ori_shape'] == (37, 53)
    assert entry['mask_path'].endswith('mask_0.png')
    assert metric.results[1]['mask_path'] is None
    assert entry['mask_threshold'] is None


def test_thin_defect_counted_at_full_resolution(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(metrics_module, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs)))
    rng = np.random.default_rng(2)
    mask = np.zeros((37, 53), dtype=bool)
    mask[1, 5:40] = True  # one pixel wide: row 1 is skipped by nearest
    amap = rng.random((INPUT, INPUT)).astype(np.float32)
    amap[0, 2:12] += 1.0
    normal = rng.random((INPUT, INPUT)).astype(np.float32)
    samples = [_sample(tmp_path, 0, mask, amap, 1),
               _sample(tmp_path, 1, np.zeros((37, 53), bool), normal, 0,
                       write_mask=False)]
    assert not samples[0]['gt_mask'].any()  # vanished at the input size
    # at the input size there is nothing anomalous to evaluate
    assert _evaluate(PixelMetric(), samples) == {}
    assert logged[-1][1]['level'] == logging.WARNING
    metric = PixelMetric(resolution='original')
    results = _evaluate(metric, samples)
    masks = [mask, np.zeros((37, 53), bool)]
    maps = [_upsample(amap, (37, 53)), _upsample(normal, (37, 53))]
    exact = _exact(masks, maps)
    for name in NAMES:
        assert abs(results[f'pixel/{name}'] - exact[name]) <= (
            metric.last_bounds[name] + 1e-10)
    assert results['pixel/AUROC'] > 0.9
    assert 'bounds' in logged[-1][0] and logged[-1][1]['level'] == logging.INFO


def test_mask_size_mismatch_names_file(tmp_path):
    samples, _, _ = _dataset(tmp_path)
    bad = str(tmp_path / 'mask_2.png')
    cv2.imwrite(bad, np.zeros((36, 53), dtype=np.uint8))  # ori_shape 37x53
    metric = PixelMetric(resolution='original')
    metric.process(None, samples)
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        metric.evaluate(len(samples))


def test_only_normal_images_and_empty_masks(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(metrics_module, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs)))
    rng = np.random.default_rng(3)
    empty = np.zeros((37, 53), dtype=bool)
    maps = [rng.random((INPUT, INPUT)).astype(np.float32) for _ in range(4)]
    # normal images without mask files only
    samples = [_sample(tmp_path, i, empty, maps[i], 0, write_mask=False)
               for i in range(4)]
    metric = PixelMetric(resolution='original')
    assert _evaluate(metric, samples) == {}
    assert 'no ground-truth mask has an anomalous pixel' in logged[-1][0]
    assert logged[-1][1]['level'] == logging.WARNING
    assert metric.last_bounds == {}
    # anomalous images whose mask files are empty
    samples = [_sample(tmp_path, i, empty, maps[i], i % 2,
                       write_mask=bool(i % 2)) for i in range(4)]
    assert _evaluate(PixelMetric(resolution='original'), samples) == {}
    assert 'no ground-truth mask has an anomalous pixel' in logged[-1][0]
    assert logged[-1][1]['level'] == logging.WARNING


def test_mask_threshold(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(metrics_module, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs)))
    rng = np.random.default_rng(4)
    mask = np.zeros((37, 53), dtype=bool)
    mask[10:20, 10:30] = True
    amap = rng.random((INPUT, INPUT)).astype(np.float32)
    path = tmp_path / 'mask_01.png'
    cv2.imwrite(str(path), mask.astype(np.uint8))  # stored as 0/1

    def samples(**meta):
        sample = _sample(tmp_path, 0, mask, amap, 1, write_mask=False,
                         mask_path=str(path), **meta)
        return [sample, _sample(tmp_path, 1, np.zeros_like(mask), amap, 0,
                                write_mask=False)]

    exact = _exact([mask, np.zeros_like(mask)],
                   [_upsample(amap, mask.shape)] * 2)
    # the dataset's mask_threshold reaches the metric through the metainfo
    results = _evaluate(PixelMetric(resolution='original', metrics='AUROC'),
                        samples(mask_threshold=0))
    assert results['pixel/AUROC'] == pytest.approx(exact['AUROC'], abs=1e-3)
    # the metric's own threshold takes precedence
    results = _evaluate(PixelMetric(resolution='original', metrics='AUROC',
                                    mask_threshold=0), samples())
    assert results['pixel/AUROC'] == pytest.approx(exact['AUROC'], abs=1e-3)
    # absent: read_mask's default rule reads a 0/1 mask as 0/1
    results = _evaluate(PixelMetric(resolution='original', metrics='AUROC'), samples())
    assert results['pixel/AUROC'] == pytest.approx(exact['AUROC'], abs=1e-3)
    # a threshold above 1 sees an empty mask: no pixel metric, a warning
    assert _evaluate(PixelMetric(resolution='original', mask_threshold=1), samples()) == {}
    assert logged[-1][1]['level'] == logging.WARNING


def test_original_errors(tmp_path):
    with pytest.raises(ValueError, match='eval_size'):
        PixelMetric(resolution='original', eval_size=8)
    with pytest.raises(ValueError, match='resolution'):
        PixelMetric(resolution='native')
    with pytest.raises(ValueError, match='num_bins'):
        PixelMetric(resolution='original', num_bins=4)
    samples, _, _ = _dataset(tmp_path)
    no_shape = dict(samples[0])
    del no_shape['ori_shape']
    with pytest.raises(KeyError, match='ori_shape'):
        PixelMetric(resolution='original').process(None, [no_shape])
    no_path = dict(samples[0])
    del no_path['mask_path']
    with pytest.raises(ValueError, match='mask_path'):
        PixelMetric(resolution='original').process(None, [no_path])
    crop = dict(samples[0], crop_box=(2, 2, 10, 10), box_id=3)  # a BoxCropDataset sample
    with pytest.raises(ValueError, match="are crops \\(box 3 of .*use resolution='input'"):
        PixelMetric(resolution='original').process(None, [crop])
    samples[2]['anomaly_map'][3, 3] = float('nan')
    metric = PixelMetric(resolution='original')
    metric.process(None, samples)
    with pytest.raises(ValueError, match="NaN in anomaly_map of 'img_2.png'"):
        metric.evaluate(len(samples))


@pytest.mark.parametrize('seed', range(6))
def test_binned_bounds_hold_on_random_pixels(seed):
    """The bounds hold for coarse bins, with ties between the classes."""
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for _ in range(3):
        mask = np.zeros((30, 40), dtype=bool)
        for _ in range(rng.integers(1, 5)):
            y, x = rng.integers(0, 25), rng.integers(0, 35)
            mask[y:y + rng.integers(1, 6), x:x + rng.integers(1, 6)] = True
        amap = np.round(rng.random(mask.shape) + 0.6 * mask,
                        int(rng.integers(1, 4))).astype(np.float32)
        masks.append(mask)
        maps.append(amap)
    scores = np.concatenate([a.reshape(-1) for a in maps])
    fpr_limit = float(rng.uniform(0.05, 1.0))
    exact = _exact(masks, maps, fpr_limit)
    for num_bins in (16, 40, 256):
        pos = scores[np.concatenate([m.reshape(-1) for m in masks])]
        edges = bin_edges(scores, pos, float(scores.min()),
                          float(scores.max()), num_bins)
        assert edges.size <= num_bins and edges[0] == scores.min()
        assert np.all(np.diff(edges) > 0)
        counts = BinnedCounts(edges)
        for mask, amap in zip(masks, maps):
            counts.add(amap, mask)
        values, bounds = binned_metrics(counts, NAMES, fpr_limit)
        for name in NAMES:
            assert abs(values[name] - exact[name]) <= bounds[name] + 1e-10
