import logging
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from anomaly_plugin.engine.hooks import AnomalyVisualizationHook
from anomaly_plugin.models.postprocess import AnomalyPostProcessor
from anomaly_plugin.structures import AnomalyDataSample
from anomaly_plugin.visualization import colorize, render_panel


def test_colorize_uses_the_given_scale_only():
    a = colorize(np.full((4, 4), 0.2), 0.0, 1.0)
    b = colorize(np.array([[0.2, 5.0]]), 0.0, 1.0)  # other values do not matter
    assert np.array_equal(a[0, 0], b[0, 0])
    low, high = colorize(np.array([[0.0, 1.0]]), 0.0, 1.0)[0]
    assert low[2] > low[0] and high[0] > high[2]  # blue at vmin, red at vmax (RGB)


def test_panel_layout_and_errors():
    img = np.zeros((10, 12, 3), np.uint8)
    panel = render_panel(img, np.zeros((10, 12)), 0, 1, None, np.ones((10, 12)), 'x')
    assert panel.shape == (30, 48, 3)
    assert panel[20:, 36:].min() == 255  # ground-truth tile all white
    with pytest.raises(ValueError, match='does not match'):
        render_panel(img, np.zeros((5, 5)), 0, 1)


def test_hook_uses_one_scale_for_the_run(tmp_path):
    paths = []
    for name in ('a', 'b'):
        p = tmp_path / f'{name}.png'
        cv2.imwrite(str(p), np.full((8, 8, 3), 128, np.uint8))
        paths.append(str(p))
    model = SimpleNamespace(postprocessor=AnomalyPostProcessor())
    runner = SimpleNamespace(model=model, work_dir=str(tmp_path),
                             logger=logging.getLogger('vis-test'))
    hook = AnomalyVisualizationHook(enable=True, alpha=1.0)
    samples = []
    for p, value in zip(paths, (0.0, 1.0)):
        s = AnomalyDataSample(metainfo=dict(img_path=p, mask_path=None,
                                            defect_type='good'))
        s.set_gt_label(0)
        s.set_pred_score(value)
        s.set_anomaly_map(torch.full((4, 4), value))
        samples.append(s)
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, None, samples)
    hook.after_test_epoch(runner)
    a = cv2.imread(str(tmp_path / 'vis' / 'good_a.png'))
    b = cv2.imread(str(tmp_path / 'vis' / 'good_b.png'))
    # overlay tile (BGR): the all-zero map is blue, the all-one map red;
    # per-image min-max scaling would paint both the same
    assert a[25, 12, 0] > a[25, 12, 2]
    assert b[25, 12, 2] > b[25, 12, 0]
    assert a.shape == (8 + 20, 4 * 8, 3)  # original size: map upsampled


def test_hook_ground_truth_uses_the_dataset_mask_threshold(tmp_path):
    # VisA-style 0/1 masks with the dataset's mask_threshold=0: the panel's
    # ground-truth tile must show the defect
    img = tmp_path / 'x.png'
    cv2.imwrite(str(img), np.full((8, 8, 3), 128, np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 100  # anomalous only under the dataset's threshold
    cv2.imwrite(str(tmp_path / 'x_mask.png'), mask)
    model = SimpleNamespace(postprocessor=AnomalyPostProcessor())
    runner = SimpleNamespace(model=model, work_dir=str(tmp_path),
                             logger=logging.getLogger('vis-test'))
    hook = AnomalyVisualizationHook(enable=True)
    s = AnomalyDataSample(metainfo=dict(img_path=str(img), mask_path=str(tmp_path / 'x_mask.png'),
                                        mask_threshold=0, defect_type='bad'))
    s.set_gt_label(1)
    s.set_pred_score(1.0)
    s.set_anomaly_map(torch.zeros(4, 4))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, None, [s])
    hook.after_test_epoch(runner)
    panel = cv2.imread(str(tmp_path / 'vis' / 'bad_x.png'))
    gt_tile = panel[20:, 24:32]
    assert gt_tile[3, 3].min() == 255 and gt_tile[0, 0].max() == 0
