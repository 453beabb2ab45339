"""AnomalyVisualizer: panels drawn from data samples and sent to the vis backends."""
import copy
import glob
import itertools
import logging
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from conftest import AE_CONFIG
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.visualization import Visualizer

import anomaly_plugin  # noqa: F401  (registers the modules)
from anomaly_plugin.engine.hooks import AnomalyVisualizationHook
from anomaly_plugin.models.postprocess import AnomalyPostProcessor
from anomaly_plugin.registry import VISUALIZERS
from anomaly_plugin.structures import AnomalyDataSample
from anomaly_plugin.visualization import AnomalyVisualizer

_names = itertools.count()


def unique(prefix='vis'):
    """A visualizer name not used before (MMEngine keeps instances by name)."""
    return f'{prefix}_{next(_names)}_{id(_names)}'


def hot_square_sample(score=0.9):
    """A (16, 16) map that is 1 on rows/cols 4:8 and 0 elsewhere; at 32 x 32 the
    square covers 8:16."""
    amap = torch.zeros(16, 16)
    amap[4:8, 4:8] = 1.0
    s = AnomalyDataSample(metainfo=dict(img_path='x.png'))
    s.set_anomaly_map(amap)
    s.set_pred_score(score)
    gt = np.zeros((32, 32), np.uint8)
    gt[8:16, 8:16] = 1
    s.set_gt_mask(gt)
    return s


def gray_image(size=32):
    return np.full((size, size, 3), 128, np.uint8)


def overlay_tile(panel_bgr, size=32):
    return panel_bgr[20:, size:2 * size]  # (size, size, 3) below the title


def test_add_datasample_draws_the_hot_square_red(tmp_path):
    vis = AnomalyVisualizer(name=unique())
    out = tmp_path / 'sub' / 'x.png'
    panel = vis.add_datasample('x', gray_image(), hot_square_sample(), out_file=str(out))
    written = cv2.imread(str(out))  # BGR
    assert written.shape == (32 + 20, 4 * 32, 3)
    assert np.array_equal(written, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    tile = overlay_tile(written).astype(int)
    hot, cold = tile[12, 12], tile[26, 26]
    assert hot[2] > hot[0] + 50  # red in the square (BGR)
    assert cold[0] > cold[2] + 50  # blue elsewhere
    gt = written[20:, 96:]
    assert gt[12, 12].min() == 255 and gt[26, 26].max() == 0
    assert np.median(written[20:, 64:96]) == 64  # no threshold: a grey tile with text


def test_add_datasample_scale_threshold_and_switches(tmp_path):
    vis = AnomalyVisualizer(name=unique())
    sample = hot_square_sample()
    # a fixed scale on which 1.0 is low: the square is blue too
    fixed = vis.add_datasample('x', gray_image(), sample, vmin=0.0, vmax=10.0)
    tile = fixed[20:, 32:64].astype(int)  # RGB
    assert tile[12, 12][2] > tile[12, 12][0]
    # predicted mask from the threshold on the resized map
    masked = vis.add_datasample('x', gray_image(), sample, pixel_threshold=0.5)
    pred = masked[20:, 64:96]
    assert pred[12, 12].min() == 255 and pred[26, 26].max() == 0
    # nothing drawn: the overlay is the image, the masks are grey tiles
    plain = vis.add_datasample('x', gray_image(), sample, draw_pred=False, draw_gt=False)
    assert np.array_equal(plain[20:, 32:64], gray_image())
    assert np.median(plain[20:, 64:]) == 64


def test_add_datasample_goes_to_the_local_backend(tmp_path):
    vis = AnomalyVisualizer(name=unique(), vis_backends=[dict(type='LocalVisBackend')],
                            save_dir=str(tmp_path))
    panel = vis.add_datasample('good_x', gray_image(), hot_square_sample(), step=3)
    saved = cv2.imread(str(tmp_path / 'vis_data' / 'vis_image' / 'good_x_3.png'))
    assert saved is not None
    assert np.array_equal(saved, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))


def test_tensorboard_backend_gets_the_panel_and_scalars(tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    vis = AnomalyVisualizer(name=unique(), vis_backends=[dict(type='TensorboardVisBackend')],
                            save_dir=str(tmp_path))
    vis.add_datasample('panel', gray_image(), hot_square_sample(), step=2)
    vis.add_scalars({'loss': 0.25}, step=5)
    vis.close()
    events = glob.glob(str(tmp_path / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0], size_guidance={'images': 0, 'scalars': 0})
    acc.Reload()
    assert acc.Tags()['images'] == ['panel']
    image = acc.Images('panel')[0]
    assert (image.step, image.height, image.width) == (2, 32 + 20, 4 * 32)
    assert [(s.step, s.value) for s in acc.Scalars('loss')] == [(5, 0.25)]


def test_built_from_the_runtime_config(tmp_path):
    cfg = Config.fromfile(AE_CONFIG)
    init_default_scope('anomaly_plugin')
    vis = VISUALIZERS.build(dict(copy.deepcopy(cfg.visualizer), name=unique(),
                                 save_dir=str(tmp_path)))
    assert type(vis) is AnomalyVisualizer
    assert list(vis._vis_backends) == ['LocalVisBackend']
    vis.add_datasample('y', gray_image(), hot_square_sample())
    assert (tmp_path / 'vis_data' / 'vis_image' / 'y_0.png').exists()
    # the switch documented in the config
    cfg.merge_from_dict({'visualizer.vis_backends.0.type': 'TensorboardVisBackend'})
    tb = VISUALIZERS.build(dict(copy.deepcopy(cfg.visualizer), name=unique(),
                                save_dir=str(tmp_path / 'tb')))
    assert list(tb._vis_backends) == ['TensorboardVisBackend']


def hook_run(tmp_path, visualizer):
    """The visualization hook on one all-ones map image, with ``visualizer`` as
    the runner's visualizer."""
    img = tmp_path / 'a.png'
    cv2.imwrite(str(img), np.full((8, 8, 3), 128, np.uint8))
    runner = SimpleNamespace(model=SimpleNamespace(postprocessor=AnomalyPostProcessor()),
                             work_dir=str(tmp_path), logger=logging.getLogger('vis-test'),
                             visualizer=visualizer, iter=7)
    hook = AnomalyVisualizationHook(enable=True)
    s = AnomalyDataSample(metainfo=dict(img_path=str(img), mask_path=None,
                                        defect_type='good'))
    s.set_gt_label(0)
    s.set_pred_score(1.0)
    s.set_anomaly_map(torch.ones(4, 4))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, None, [s])
    hook.after_test_epoch(runner)
    return cv2.imread(str(tmp_path / 'vis' / 'good_a.png'))


@pytest.mark.parametrize('cls', [AnomalyVisualizer, Visualizer])
def test_hook_sends_its_panels_to_the_runner_visualizer(tmp_path, cls):
    backend_dir = tmp_path / 'log'
    vis = cls(name=unique(), vis_backends=[dict(type='LocalVisBackend')],
              save_dir=str(backend_dir))
    panel = hook_run(tmp_path, vis)
    assert panel.shape == (8 + 20, 4 * 8, 3)
    sent = cv2.imread(str(backend_dir / 'vis_data' / 'vis_image' / 'good_a_7.png'))
    assert sent is not None and np.array_equal(sent, panel)
