"""SSIM-AE, skip-connected AE with stain noise and the pyramid AE (MSCDAE)."""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, make_mvtec, tiny_ae_options
from mmengine.config import Config
from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import disable_validation, merge_options
from anomaly_plugin.models import MultiScalePyramidAE, PixelNoise, SkipAutoEncoder, StainNoise
from anomaly_plugin.models.detectors.mscdae import gaussian_pyramid, pyr_down, random_patches
from anomaly_plugin.registry import MODELS

SKIP_SMALL = dict(type='SkipAutoEncoder', channels=(8, 16), postprocess=dict(sigma=1.0))
PYR_SMALL = dict(type='MultiScalePyramidAE', channels=(8,), latent_channels=4, patch_size=16,
                 patches_per_image=2, postprocess=dict(sigma=1.0))

# per config: the model options that shrink it (the AE options of conftest fit the SSIM-AE)
MODEL_OPTIONS = {
    'ssim_ae_mvtec': None,
    'skip_ae_mvtec': {'model.channels': [8, 16]},
    'mscdae_mvtec': {'model.channels': [8], 'model.latent_channels': 4,
                     'model.patch_size': 16, 'model.patches_per_image': 2},
}
LOSS_KEYS = {
    'ssim_ae_mvtec': {'loss_rec'},
    'skip_ae_mvtec': {'loss_rec'},
    'mscdae_mvtec': {'loss_level0', 'loss_level1', 'loss_level2'},
}


def _batch(b=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    # 9 training images: 1 held out for calibration, 8 left = 2 iterations of 4
    return make_mvtec(tmp_path_factory.mktemp('recon') / 'cat', size=32, n_train=9,
                      n_good=2, n_bad=2)


@pytest.mark.parametrize('name', sorted(MODEL_OPTIONS))
def test_config_trains_two_iterations_and_predicts(name, tiny_data, tmp_path):
    cfg = Config.fromfile(str(ROOT / 'configs' / 'ae' / f'{name}.py'))
    opts = tiny_ae_options(tiny_data, tmp_path / 'work', epochs=1)
    if MODEL_OPTIONS[name] is not None:
        opts = {k: v for k, v in opts.items()
                if not k.startswith('model.') or k.startswith('model.postprocess')}
        opts.update(MODEL_OPTIONS[name])
    merge_options(cfg, opts)
    disable_validation(cfg)
    cfg.experiment_name = f'test_{name}'
    assert isinstance(MODELS.build(cfg.model), torch.nn.Module)

    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2
    logged = {k.split('/', 1)[1] for k in runner.message_hub.log_scalars if k.startswith('train/')}
    assert LOSS_KEYS[name] <= logged
    assert 'loss' in logged  # MMEngine's total

    model = runner.model.eval()
    if getattr(model, 'standardize_levels', False):  # fitted by CalibrationHook
        assert bool(model.level_stats_fitted) and (model.level_std != 1).all()
    batch = next(iter(runner.test_dataloader))
    first = model.test_step(batch)
    second = model.test_step(batch)
    assert len(first) == len(batch['inputs'])
    for a, b in zip(first, second):
        assert a.anomaly_map.shape == (32, 32)
        assert torch.isfinite(a.anomaly_map).all()
        assert torch.equal(a.anomaly_map, b.anomaly_map)  # no randomness at test time
        assert float(a.pred_score) == float(b.pred_score)


def test_combined_loss_logs_each_term_and_sums_to_the_loss():
    model = MODELS.build(dict(
        type='ConvAutoEncoder',
        encoder=dict(type='ConvEncoder', channels=(8, 16), latent_channels=4),
        decoder=dict(type='ConvDecoder', latent_channels=4, channels=(16, 8)),
        loss=dict(type='CombinedLoss', losses=[dict(type='L2Loss', loss_weight=2.0),
                                               dict(type='SSIMLoss')])))
    x = _batch()
    losses = model(x, mode='loss')
    assert set(losses) == {'loss_l2', 'loss_ssim'}
    total, log_vars = model.parse_losses(losses)
    target = model.data_preprocessor.denormalize(x)
    expected = model.loss_fn(model.reconstruct(x), target)
    assert float(total) == pytest.approx(float(expected), rel=1e-5)
    assert float(log_vars['loss']) == pytest.approx(float(expected), rel=1e-5)
    assert float(losses['loss_l2']) > 0 and float(losses['loss_ssim']) > 0


# ----------------------------------------------------------------------------- stains

def _images(b=4, size=64, seed=0, low=0.0, high=1.0):
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(b, 3, size, size, generator=g)


def test_stains_change_pixels_only_inside_their_mask():
    x = _images()
    torch.manual_seed(0)
    out, mask = StainNoise(num_stains=(1, 3), size_range=(0.05, 0.2))(x)
    assert out.shape == x.shape and mask.shape == (4, 1, 64, 64)
    assert mask.min() >= 0 and mask.max() <= 1
    changed = (out != x).any(1, keepdim=True)  # (B, 1, H, W)
    assert not (changed & (mask == 0)).any()
    # every image got at least one visible stain, covering a small part of it
    covered = (mask > 0).flatten(1).float().mean(1)
    assert (covered > 0).all() and (covered < 0.5).all()
    assert changed.flatten(1).any(1).all()
    assert out.min() >= 0 and out.max() <= 1


def test_stains_are_reproducible_with_the_global_seed():
    x = _images()
    noise = StainNoise()
    torch.manual_seed(123)
    a, ma = noise(x)
    torch.manual_seed(123)
    b, mb = noise(x)
    torch.manual_seed(124)
    c, _ = noise(x)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c)


def test_stain_colours():
    x = _images(low=0.3, high=0.6)
    torch.manual_seed(0)
    out, mask = StainNoise(size_range=(0.1, 0.2), color_mode='image', noise_std=0.0)(x)
    full = (mask == 1).expand_as(x)
    assert full.any()
    inside = out[full]
    assert inside.min() >= x.min() - 1e-6 and inside.max() <= x.max() + 1e-6
    torch.manual_seed(0)
    out, mask = StainNoise(size_range=(0.1, 0.2), color_mode='gray', noise_std=0.0,
                           color_range=(0.9, 1.0))(x)
    full = (mask == 1)[:, 0]  # (B, H, W)
    vals = out.permute(0, 2, 3, 1)[full]  # (N, 3)
    assert torch.equal(vals[:, 0], vals[:, 1]) and torch.equal(vals[:, 0], vals[:, 2])
    assert vals.min() >= 0.9


def test_stain_probability_zero_and_bad_arguments():
    x = _images()
    out, mask = StainNoise(prob=0.0)(x)
    assert torch.equal(out, x) and not mask.any()
    with pytest.raises(ValueError, match='color_mode'):
        StainNoise(color_mode='pink')
    with pytest.raises(ValueError, match='num_stains'):
        StainNoise(num_stains=(3, 1))
    with pytest.raises(ValueError, match='StainNoise expects'):
        StainNoise()(torch.zeros(3, 8, 8))


def test_salt_and_pepper_noise():
    x = _images(b=2, size=128, low=0.25, high=0.75)
    torch.manual_seed(0)
    out, mask = PixelNoise(mode='salt_pepper', amount=0.1)(x)
    changed = (out != x).any(1, keepdim=True)
    assert torch.equal(changed, mask.bool())
    hit = out.permute(0, 2, 3, 1)[mask[:, 0].bool()]  # (N, 3)
    assert set(hit.unique().tolist()) == {0.0, 1.0}
    assert float(mask.mean()) == pytest.approx(0.1, abs=0.02)
    torch.manual_seed(0)
    gauss, _ = PixelNoise(mode='gaussian', std=0.05)(x)
    assert 0.03 < float((gauss - x).std()) < 0.07


# ------------------------------------------------------------------- skip autoencoder

class _Recorder(torch.nn.Module):
    """Corruption that counts its calls and whitens the images."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        return torch.ones_like(images), torch.ones_like(images[:, :1])


def test_skip_ae_corrupts_in_loss_only_and_learns_from_the_clean_image():
    model = MODELS.build(SKIP_SMALL)
    assert isinstance(model, SkipAutoEncoder) and isinstance(model.corruption, StainNoise)
    model.corruption = _Recorder()
    x = _batch()
    losses = model(x, mode='loss')
    assert model.corruption.calls == 1
    losses['loss_rec'].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # the target is the clean image: the loss equals L2(reconstruction of white, clean)
    with torch.no_grad():
        clean = model.data_preprocessor.denormalize(x)
        expected = (model.reconstruct(torch.ones_like(clean)) - clean).pow(2).mean()
    assert float(losses['loss_rec']) == pytest.approx(float(expected), rel=1e-5)
    model.eval()
    model(x, mode='predict')
    model(x, mode='tensor')
    assert model.corruption.calls == 1


@pytest.mark.parametrize('skip', ['concat', 'add'])
def test_skip_ae_shapes_and_deterministic_prediction(skip):
    model = MODELS.build(dict(SKIP_SMALL, channels=(4, 8, 8), skip=skip)).eval()
    x = _batch(2, 30)[..., :26]  # odd-sized feature maps inside
    raw = model(x, mode='tensor')
    assert raw.shape == (2, 1, 30, 26)
    a = model(x, mode='predict')
    b = model(x, mode='predict')
    assert a[0].anomaly_map.shape == (30, 26)
    assert torch.equal(a[1].anomaly_map, b[1].anomaly_map)
    with pytest.raises(ValueError, match='skip'):
        MODELS.build(dict(SKIP_SMALL, skip='sum'))


# ----------------------------------------------------------------------------- pyramid

def test_pyramid_level_shapes_and_opencv_agreement():
    x = torch.rand(2, 3, 33, 24)
    levels = gaussian_pyramid(x, 4)
    assert [tuple(lv.shape) for lv in levels] == [
        (2, 3, 33, 24), (2, 3, 17, 12), (2, 3, 9, 6), (2, 3, 5, 3)]
    img = x[0].permute(1, 2, 0).numpy().copy()
    ref = cv2.pyrDown(img)
    np.testing.assert_allclose(pyr_down(x)[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match='num_levels'):
        gaussian_pyramid(x, 0)


def test_random_patches_are_windows_of_the_image():
    b, c, h, w, p = 2, 3, 12, 10, 4
    x = torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)
    torch.manual_seed(0)
    crops = random_patches(x, p, 5)  # (B * 5, C, P, P)
    assert crops.shape == (10, 3, 4, 4)
    for n, crop in enumerate(crops):
        img = x[n // 5]
        # the top-left value gives the window's position
        y0, x0 = divmod(int(crop[0, 0, 0]) - int(img[0, 0, 0]), w)
        assert torch.equal(crop, img[:, y0:y0 + p, x0:x0 + p])


def test_pyramid_ae_losses_levels_and_fusion():
    model = MODELS.build(PYR_SMALL)
    assert isinstance(model, MultiScalePyramidAE) and isinstance(model.corruption, PixelNoise)
    x = _batch(2, 32)
    losses = model(x, mode='loss')
    assert set(losses) == {'loss_level0', 'loss_level1', 'loss_level2'}
    sum(losses.values()).backward()
    for ae in model.levels:  # every level's network is trained
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ae.parameters())
    model.eval()
    maps = model.level_maps(x)
    assert [tuple(m.shape) for m in maps] == [(2, 1, 32, 32), (2, 1, 16, 16), (2, 1, 8, 8)]
    fused = {}
    for fusion in ('mean', 'max', 'min'):
        model.fusion = fusion
        fused[fusion] = model(x, mode='tensor')
        assert fused[fusion].shape == (2, 1, 32, 32)
    assert (fused['max'] >= fused['mean'] - 1e-6).all()
    assert (fused['mean'] >= fused['min'] - 1e-6).all()
    a, b = model(x, mode='predict'), model(x, mode='predict')
    assert torch.equal(a[0].anomaly_map, b[0].anomaly_map)


def _uint8_batches(sizes, hw=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [dict(inputs=[torch.randint(0, 256, (3, hw, hw), generator=g, dtype=torch.uint8)
                         for _ in range(n)]) for n in sizes]


def test_pyramid_ae_standardised_levels():
    model = MODELS.build(dict(PYR_SMALL, standardize_levels=True, level_weights=[1, 2, 1]))
    model.eval()
    x = _batch(2, 32)
    with pytest.warns(UserWarning, match='not fitted'):
        model(x, mode='tensor')
    batches = _uint8_batches((3, 2))
    stats = model.fit_normal_statistics(batches)
    assert not model.training and bool(model.level_stats_fitted)

    # independent: every level map of the 5 images at once, statistics in numpy
    images = [img for b in batches for img in b['inputs']]
    inputs = model.data_preprocessor(dict(inputs=images), False)['inputs']
    with torch.no_grad():
        levels = model.level_maps(inputs)
    for i, m in enumerate(levels):
        vals = m.double().flatten().numpy()
        assert stats['mean'][i] == pytest.approx(vals.mean(), rel=1e-6)
        assert stats['std'][i] == pytest.approx(vals.std(), rel=1e-6)
    assert torch.allclose(model.level_std.double(), torch.tensor(stats['std'], dtype=torch.float64))

    # the fused map is the weighted mean of the standardised, upsampled levels
    expected = 0
    with torch.no_grad():
        maps = model.level_maps(x)
    for w, m, mu, sd in zip((1, 2, 1), maps, stats['mean'], stats['std']):
        expected = expected + w * F.interpolate((m - mu) / sd, size=(32, 32),
                                                mode='bilinear', align_corners=False)
    assert torch.allclose(model(x, mode='tensor'), expected / 4, atol=1e-5)

    # the statistics travel in the state dict
    other = MODELS.build(dict(PYR_SMALL, standardize_levels=True, level_weights=[1, 2, 1]))
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.eval()(x, mode='tensor'), model(x, mode='tensor'))

    plain = MODELS.build(PYR_SMALL)
    assert plain.fit_normal_statistics(batches) == {}
    assert not bool(plain.level_stats_fitted) and torch.equal(plain.level_std, torch.ones(3))


def test_pyramid_ae_gray_and_odd_sizes():
    model = MODELS.build(dict(PYR_SMALL, gray=True, channels=(4, 8), patch_size=None)).eval()
    x = _batch(1, 30)[..., :27]
    levels = model.pyramid(x)
    assert [tuple(lv.shape) for lv in levels] == [(1, 1, 30, 27), (1, 1, 15, 14), (1, 1, 8, 7)]
    assert model(x, mode='tensor').shape == (1, 1, 30, 27)
    model.train()
    assert set(model(x, mode='loss')) == {'loss_level0', 'loss_level1', 'loss_level2'}
    with pytest.raises(ValueError, match='level_weights'):
        MODELS.build(dict(PYR_SMALL, level_weights=[1.0]))
    with pytest.raises(ValueError, match='fusion'):
        MODELS.build(dict(PYR_SMALL, fusion='vote'))
