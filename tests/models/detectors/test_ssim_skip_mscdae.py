"""SSIM-AE, skip-connected AE with stain noise and the pyramid AE (MSCDAE)."""
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, make_mvtec, tiny_ae_options
from mmengine.config import Config
from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import disable_validation, fit_normal, merge_options
from anomaly_plugin.models import MultiScalePyramidAE, PixelNoise, SkipAutoEncoder, StainNoise
from anomaly_plugin.registry import MODELS


def skip_small(**unet):
    unet = dict(dict(type='UNet', channels=(8, 16), down='stride', level_convs=1,
                     act='leaky_relu', up='bilinear', merge_convs=1, skip_first=False,
                     head_convs=1, out_kernel=3), **unet)
    return dict(type='SkipAutoEncoder', autoencoder=unet, postprocess=dict(sigma=1.0))


def level_ae(channels=(8,), latent=4, c=3):
    return dict(type='AutoEncoderNet',
                encoder=dict(type='ConvEncoder', in_channels=c, channels=channels,
                             latent_channels=latent),
                decoder=dict(type='ConvDecoder', latent_channels=latent,
                             channels=channels[::-1], out_channels=c))


SKIP_SMALL = skip_small()
PYR_SMALL = dict(type='MultiScalePyramidAE', autoencoder=level_ae(), patch_size=16,
                 patches_per_image=2, postprocess=dict(sigma=1.0))

# per config: the model options that shrink it (the AE options of conftest fit the SSIM-AE)
MODEL_OPTIONS = {
    'ssim_ae_mvtec': None,
    'skip_ae_mvtec': {'model.autoencoder.channels': [8, 16]},
    'mscdae_mvtec': {'model.autoencoder': level_ae(),
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
    model = MODELS.build(skip_small(channels=(4, 8, 8), merge=skip)).eval()
    x = _batch(2, 30)[..., :26]  # odd-sized feature maps inside
    raw = model(x, mode='tensor')
    assert raw.shape == (2, 1, 30, 26)
    a = model(x, mode='predict')
    b = model(x, mode='predict')
    assert a[0].anomaly_map.shape == (30, 26)
    assert torch.equal(a[1].anomaly_map, b[1].anomaly_map)
    with pytest.raises(ValueError, match='merge'):
        MODELS.build(skip_small(merge='sum'))


# ----------------------------------------------------------------------------- pyramid

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
    assert model.fit_stage == 'after'
    stats = fit_normal(model, batches)
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

    plain = MODELS.build(PYR_SMALL)  # nothing to fit: no pass after training
    assert plain.fit_stage is None
    assert not bool(plain.level_stats_fitted) and torch.equal(plain.level_std, torch.ones(3))


def test_pyramid_ae_gray_and_odd_sizes():
    model = MODELS.build(dict(PYR_SMALL, gray=True, autoencoder=level_ae((4, 8), c=1),
                              patch_size=None)).eval()
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
