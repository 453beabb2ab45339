"""PatchCore and PaDiM through their configs, the Runner and the tools."""
import copy

import pytest
import torch
from conftest import ROOT, make_mvtec
from mmengine.config import Config
from mmengine.runner import Runner

from anomaly_plugin.engine import merge_options
from anomaly_plugin.registry import MODELS

PATCHCORE = str(ROOT / 'configs/patchcore/patchcore_mobilenetv2_mvtec.py')
PADIM = str(ROOT / 'configs/padim/padim_mobilenetv2_mvtec.py')
OTHERS = [str(ROOT / p) for p in ('configs/patchcore/patchcore_wrn50_mvtec.py',
                                  'configs/patchcore/patchcore_resnet18_mvtec.py',
                                  'configs/padim/padim_resnet18_mvtec.py')]


def tiny_options(data_root, work_dir=None):
    """No pretrained weights (nothing downloads), 64x64 inputs."""
    opts = {'data_root': data_root, 'img_size': 64,
            'model.backbone.backbone.init_cfg': None,
            'train_dataloader.batch_size': 2, 'test_dataloader.batch_size': 4,
            'model.postprocess.sigma': 1.0}
    if work_dir is not None:
        opts['work_dir'] = str(work_dir)
    return opts


def build_cfg(path, data_root, work_dir, **extra):
    cfg = Config.fromfile(path)
    merge_options(cfg, {**tiny_options(data_root, work_dir), **extra})
    cfg.experiment_name = f'{type(cfg).__name__}_{id(cfg)}'
    return cfg


@pytest.mark.parametrize('config', OTHERS)
def test_internet_configs_build_without_weights(config):
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.backbone.init_cfg.checkpoint.startswith('https://')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.backbone.init_cfg = None
    model = MODELS.build(model_cfg)
    feats = model.extract(torch.zeros(1, 3, 64, 64))
    assert feats.ndim == 4


@pytest.mark.parametrize('config', [PATCHCORE, PADIM])
def test_fit_test_and_reload_into_empty_model(config, tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=64, n_train=9, defect_value=200)
    cfg = build_cfg(config, data, tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert 0.0 <= metrics['pixel/AUPRO'] <= 1.0
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    state = torch.load(ckpt, weights_only=True)['state_dict']
    assert all(torch.isfinite(state[f'postprocessor.{k}']) for k in
               ('image_threshold', 'pixel_threshold'))
    # a freshly built, empty model scores identically from the checkpoint
    fresh = MODELS.build(copy.deepcopy(cfg.model)).eval()
    fresh.load_state_dict(state)
    model = runner.model.eval()
    x = torch.randn(2, 3, 64, 64)
    a, b = model(x, mode='predict'), fresh(x, mode='predict')
    for sa, sb in zip(a, b):
        # equal up to float rounding (BLAS kernels may depend on alignment)
        torch.testing.assert_close(sa.anomaly_map, sb.anomaly_map, rtol=1e-5, atol=1e-6)
        assert float(sa.pred_score) == pytest.approx(float(sb.pred_score), rel=1e-5)
        assert int(sa.pred_label) == int(sb.pred_label)


def test_patchcore_has_no_loss(tmp_path):
    cfg = Config.fromfile(PATCHCORE)
    cfg.model.backbone.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    with pytest.raises(RuntimeError, match='FitLoop'):
        model(torch.zeros(1, 3, 64, 64), mode='loss')


def test_fast_inference_equals_plain_backbone_and_follows_weights():
    fe = MODELS.build(dict(type='FeatureExtractor', pool_size=3,
                           backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4))))
    x = torch.randn(2, 3, 64, 64)
    fast = fe(x)
    fe.fast_inference = False
    plain = fe(x)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    assert fast.shape == (2, 128, 8, 8)
    assert not any('_fast' in k for k in fe.state_dict())
    state = {k: v + 0.01 if v.dtype.is_floating_point else v
             for k, v in fe.state_dict().items()}
    fe.load_state_dict(state)
    fe.fast_inference = True
    reloaded = fe(x)  # the fused copy is rebuilt from the new weights
    fe.fast_inference = False
    torch.testing.assert_close(reloaded, fe(x), rtol=1e-4, atol=1e-5)
    assert (reloaded - fast).abs().max() > 1e-4
