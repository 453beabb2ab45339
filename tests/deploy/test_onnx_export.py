"""ONNX export of every exportable family, checked with onnxruntime against PyTorch."""
import copy
import json

import numpy as np
import pytest
import torch
from conftest import ROOT, drop_pretrained, run_tool
from mmengine.config import Config

import anomaly_plugin  # noqa: F401
from anomaly_plugin.deploy import export_onnx
from anomaly_plugin.engine import fit_normal
from anomaly_plugin.registry import MODELS
from anomaly_plugin.structures import AnomalyDataSample

ort = pytest.importorskip('onnxruntime')

#: config, model overrides, input side. Tolerance: |onnx - torch| <= 1e-4 * max|map| + 1e-5
CASES = {
    'conv_ae': ('configs/ae/conv_ae_mvtec.py', {}, 64),
    'skip_ae': ('configs/ae/skip_ae_mvtec.py', {}, 64),
    'ssim_ae': ('configs/ae/ssim_ae_mvtec.py', {}, 64),
    'mscdae': ('configs/ae/mscdae_mvtec.py', {}, 64),
    'memae': ('configs/ae/memae_mvtec.py', {}, 64),
    'fcae': ('configs/ae/fcae_mvtec.py', {}, 64),
    'riad': ('configs/riad/riad_mvtec.py', {}, 64),
    'ganomaly': ('configs/generative/ganomaly_mvtec.py', {}, 64),
    'skip_ganomaly': ('configs/generative/skip_ganomaly_mvtec.py', {}, 64),
    'feature_editing': ('configs/latent/feature_editing_ae_mvtec.py', {}, 64),
    'vqvae_plain': ('configs/latent/vqvae_prior_mvtec.py', {'resample': None}, 64),
    'vqvae_nll': ('configs/latent/vqvae_prior_mvtec.py', {'map_type': 'nll'}, 64),
    'patchcore': ('configs/patchcore/patchcore_mobilenetv2_mvtec.py', {}, 64),
    'padim': ('configs/padim/padim_mobilenetv2_mvtec.py', {}, 64),
    # an untrained MobileNetV2's deep stages are nearly constant (1e-9) over inputs; an
    # untrained ResNet-18's are not
    'dfm': ('configs/dfm/dfm_mobilenetv2_mvtec.py', {'pool_size': 2, 'backbone': dict(
        type='FeatureExtractor', pool_size=1,
        backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(2, )))}, 64),
    'stfpm': ('configs/stfpm/stfpm_mobilenetv2_mvtec.py', {}, 64),
    'reverse_distillation': ('configs/reverse_distillation/rd_mobilenetv2_mvtec.py', {}, 64),
    'fastflow': ('configs/fastflow/fastflow_mobilenetv2_mvtec.py', {'image_size': (64, 64)}, 64),
    'cflow': ('configs/cflow/cflow_mobilenetv2_mvtec.py', {}, 64),
    'patch_svdd': ('configs/patch_svdd/patch_svdd_mvtec.py', {}, 64),
    'draem': ('configs/draem/draem_mvtec.py', {'score_filter': 5}, 64),
    'simplenet': ('configs/simplenet/simplenet_mobilenetv2_mvtec.py', {}, 64),
    # an untrained ResNet-18 (as for DFM): distances that vary over the inputs
    'cutpaste': ('configs/cutpaste/cutpaste_mobilenetv2_mvtec.py', {
        'patch_size': 32, 'stride': 16,
        'backbone': dict(type='mmpretrain.ResNet', depth=18, out_indices=(3, ))}, 64),
    # 3 x 3 tiles of 32 px, 16 apart: the per-tile maps are stitched inside the graph
    'patchcore_tiled': ('configs/tiling/patchcore_mobilenetv2_tiled_mvtec.py',
                        {'tile_size': 32, 'stride': 16}, 64),
}


def _images(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(n)]


def build(config, opts, size):
    cfg = Config.fromfile(str(ROOT / config))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(opts)
    drop_pretrained(model_cfg)  # no weights in tests
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()
    if model.fit_stage == 'instead':  # PatchCore / PaDiM: fit on a few random images
        fit_normal(model, [dict(inputs=_images(4, size, 1), data_samples=None)])
    elif model.fit_stage == 'after':  # statistics fitted after training
        fit_normal(model, [dict(inputs=_images(2, size, s), data_samples=[AnomalyDataSample()] * 2)
                           for s in (2, 3)])
    model.postprocessor.set_calibration(dict(image_threshold=0.5, pixel_threshold=0.4))
    return model


@pytest.mark.parametrize('name', sorted(CASES))
def test_onnxruntime_equals_pytorch(name, tmp_path):
    config, opts, size = CASES[name]
    model = build(config, opts, size)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(5))
    if name == 'cflow':
        # untrained flows on an untrained backbone's small features give a nearly
        # constant map: weights far from the identity make the check meaningful
        g = torch.Generator().manual_seed(6)
        with torch.no_grad():
            for p in model.flows.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    if hasattr(model, 'quantizer'):
        # the codebook is the test batch's 2 x 8 x 8 encoder vectors: every code is
        # decided with a margin, so float rounding cannot flip a nearest entry
        with torch.no_grad():
            z = model.autoencoder.encoder(model.data_preprocessor.denormalize(x))
            model.quantizer.codebook.copy_(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
    meta = export_onnx(model, str(tmp_path), (size, size), batch_size=2)
    assert meta['input']['shape'] == [2, 3, size, size]
    assert meta['calibration']['image_threshold'] == 0.5
    assert json.loads((tmp_path / 'calibration.json').read_text()) == meta
    sess = ort.InferenceSession(str(tmp_path / 'model.onnx'),
                                providers=['CPUExecutionProvider'])
    got_map, got_score = sess.run(None, {'input': x.numpy()})
    samples = model.predict(x)  # what tools/test.py reports
    ref_map = torch.stack([s.anomaly_map for s in samples]).numpy()
    ref_score = torch.stack([s.pred_score for s in samples]).numpy()
    assert got_map.shape == (2, size, size) and got_score.shape == (2,)
    tol = 1e-4 * float(np.abs(ref_map).max()) + 1e-5
    np.testing.assert_allclose(got_map, ref_map, rtol=1e-4, atol=tol)
    np.testing.assert_allclose(got_score, ref_score, rtol=1e-4,
                               atol=1e-4 * float(np.abs(ref_score).max()) + 1e-5)
    # the graph is not constant: another input gives another map
    other = sess.run(None, {'input': np.zeros_like(x.numpy())})[0]
    assert np.abs(other - got_map).max() > tol


@pytest.mark.parametrize('config,opts,reason', [
    ('configs/generative/anogan_mvtec.py', {}, 'gradient-descent search'),
    ('configs/generative/vae_mvtec.py', {}, 'posterior samples'),
    ('configs/latent/vqvae_prior_mvtec.py', {}, 'model.resample=None'),
])
def test_models_that_cannot_be_exported_say_why(config, opts, reason, tmp_path):
    model = MODELS.build(copy.deepcopy(Config.fromfile(str(ROOT / config)).model))
    with pytest.raises(ValueError, match=reason):
        export_onnx(model, str(tmp_path), (64, 64))
    assert not (tmp_path / 'model.onnx').exists()


def test_export_tool_with_check(tmp_path):
    config = 'configs/ae/conv_ae_mvtec.py'
    model = build(config, {}, 32)
    model.note_input_size(torch.zeros(1, 3, 32, 48))  # trained at 32x48
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = run_tool(['tools/export.py', config, str(ckpt), '--out', str(tmp_path / 'onnx'),
                    '--check'])
    diffs = json.loads(next(line[len('check: '):] for line in out.splitlines()
                            if line.startswith('check: ')))
    assert diffs['max_abs_map'] > 0
    assert diffs['max_abs_diff_map'] <= 1e-4 * diffs['max_abs_map'] + 1e-5
    meta = json.loads((tmp_path / 'onnx' / 'calibration.json').read_text())
    assert meta['input']['shape'] == [1, 3, 32, 48]  # the checkpoint's size
    assert meta['calibration']['pixel_threshold'] == pytest.approx(0.4)
