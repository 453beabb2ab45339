import json
from types import SimpleNamespace

import torch
from conftest import (
    AE_CONFIG,
    make_mvtec,
    options_to_cli,
    tiny_ae_options,
    training_progress,
    training_runner,
)
from conftest import run_tool as run
from mmengine.logging import MessageHub

from anomaly_plugin.engine.loops import MinItersEpochBasedTrainLoop, first_occurrence


def test_first_occurrence_drops_sampler_padding():
    # 5 samples on 2 ranks: rank 1's last index repeats sample 0
    ranks = [[0, 2, 4], [1, 3, 0]]
    assert first_occurrence(ranks, 0) == [True, True, True]
    assert first_occurrence(ranks, 1) == [True, True, False]
    assert first_occurrence([[0, 1, 2]], 0) == [True, True, True]


def test_benchmark_tool_reports_timings_and_metrics(tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=64, n_train=6)
    out = tmp_path / 'bench.json'
    run(['tools/benchmark.py', 'configs/patchcore/patchcore_mobilenetv2_mvtec.py',
         '--data-root', data, '--runs', '2', '--threads', '1', '--out', str(out),
         '--cfg-options', *options_to_cli({'img_size': 64,
                                           'model.backbone.backbone.init_cfg': None})])
    result = json.loads(out.read_text())
    assert len(result['runs']) == 2 and result['fit_s_median'] > 0
    assert result['test_images_per_s_median'] > 0 and result['peak_rss_mb'] > 0
    assert 0 <= result['metrics']['pixel/AUPRO'] <= 1
    assert result['knn']['gemm_gflops'] > 0 and result['knn']['knn_gflops'] > 0


def _min_iters_runner(tmp_path, n_train, **train_cfg):
    data = make_mvtec(tmp_path / f'cat{n_train}', size=32, n_train=n_train)
    opts = tiny_ae_options(data, tmp_path / f'work{n_train}', epochs=2)
    opts['holdout_ratio'] = 0
    opts['train_cfg'] = dict(type='MinItersEpochBasedTrainLoop', max_epochs=2,
                             val_interval=2, **train_cfg)
    return training_runner(AE_CONFIG, opts)


def test_min_iters_trains_a_small_set_as_long_as_a_large_one(tmp_path):
    # 8 images in batches of 4: 2 steps an epoch; 2 epochs would be 4 steps
    small = _min_iters_runner(tmp_path, 8, min_iters=10)
    small.train()
    assert (small.epoch, small.iter) == (5, 10)  # ceil(10 / 2) epochs
    assert small.message_hub.get_info('epoch_scale') == 2.5
    # 24 images: 6 steps an epoch, 12 in 2 epochs >= 10: MMEngine's loop as it is
    large = _min_iters_runner(tmp_path, 24, min_iters=10)
    large.train()
    assert (large.epoch, large.iter) == (2, 12)
    assert large.message_hub.get_info('epoch_scale') == 1.0


class _Loader(list):
    dataset = SimpleNamespace(metainfo={})


def test_min_iters_scales_validation_with_the_epochs():
    runner = SimpleNamespace(visualizer=SimpleNamespace())
    loop = MinItersEpochBasedTrainLoop(runner, _Loader(range(3)), max_epochs=4, min_iters=30,
                                       val_begin=2, val_interval=4)
    assert (loop.max_epochs, loop.max_iters, loop.epoch_scale) == (10, 30, 2.5)
    assert (loop.val_begin, loop.val_interval) == (5, 10)  # once, at the end, as given
    loop = MinItersEpochBasedTrainLoop(runner, _Loader(range(30)), max_epochs=4, min_iters=30,
                                       val_interval=4)
    assert (loop.max_epochs, loop.max_iters, loop.val_interval) == (4, 120, 4)


def test_epoch_stages_scale_with_the_loop():
    from anomaly_plugin.models.detectors.anogan import FAnoGAN
    model = FAnoGAN.__new__(FAnoGAN)  # only the stage logic is used
    torch.nn.Module.__init__(model)
    model.gan_epochs, model.stage, model._own_iter = 2, None, 0
    hub = MessageHub.get_current_instance()
    saved = hub.get_info('epoch_scale')
    try:
        hub.update_info('epoch_scale', 2.5)  # 4 epochs run as 10: the GAN stage is 5
        with training_progress(iter=0, epoch=4, max_epochs=10):
            assert model.current_stage()[0] == 'gan'
        with training_progress(iter=0, epoch=5, max_epochs=10):
            assert model.current_stage()[0] == 'encoder'
        hub.update_info('epoch_scale', 1.0)
        with training_progress(iter=0, epoch=2, max_epochs=4):
            assert model.current_stage()[0] == 'encoder'
    finally:
        hub.update_info('epoch_scale', saved)
