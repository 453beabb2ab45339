"""VQ-VAE + prior and the feature-editing autoencoder built from their configs."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, training_progress
from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import fit_normal
from anomaly_plugin.models import DCGANDiscriminator, kmeans
from anomaly_plugin.registry import MODELS
from anomaly_plugin.structures import AnomalyDataSample

VQ = 'configs/latent/vqvae_prior_mvtec.py'
EDIT = 'configs/latent/feature_editing_ae_mvtec.py'
EDIT_GAN = 'configs/latent/feature_editing_gan_mvtec.py'


def build(config, **model_opts):
    cfg = Config.fromfile(str(ROOT / config))
    cfg.model.update(model_opts)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


def batch(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(n)]
    return dict(inputs=imgs, data_samples=[AnomalyDataSample() for _ in range(n)])


def images_of(model, data):
    inputs = model.data_preprocessor(data, False)['inputs']
    return inputs, model.data_preprocessor.denormalize(inputs)


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(module, before):
    return any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())


@pytest.fixture(scope='module')
def vq():
    """The VQ config's model after two steps of each stage on random images."""
    model, wrappers = build(VQ)
    assert isinstance(wrappers, OptimWrapperDict)
    assert sorted(wrappers.keys()) == ['autoencoder', 'prior']
    model.train()
    ae, prior = state(model.autoencoder), state(model.prior)
    model.stage = 'vq'
    for i in range(2):
        log = model.train_step(batch(seed=i), wrappers)
        assert {'loss_rec', 'loss_commit', 'loss_autoencoder', 'perplexity'} <= set(log)
    assert changed(model.autoencoder, ae) and not changed(model.prior, prior)
    ae = state(model.autoencoder)  # parameters, BatchNorm statistics and codebook
    model.stage = 'prior'
    for i in range(2):
        log = model.train_step(batch(seed=i), wrappers)
        assert set(log) == {'loss_prior'} and torch.isfinite(log['loss_prior'])
    assert changed(model.prior, prior) and not changed(model.autoencoder, ae)
    model.stage = None
    model.eval()
    return model


def test_vq_predicts_input_size_maps_in_both_map_types(vq):
    inputs, images = images_of(vq, batch(2, seed=5))
    vq.threshold = -1.0
    for map_type in ('residual', 'nll'):
        vq.map_type = map_type
        samples = vq.predict(inputs)
        assert all(s.anomaly_map.shape == (64, 64) for s in samples)
        assert all(torch.isfinite(s.anomaly_map).all() for s in samples)
    # the nll map is the per-code negative log-likelihood, upsampled
    _, logp = vq.code_log_probs(images)
    expected = F.interpolate(-logp[:, None], size=(64, 64), mode='bilinear',
                             align_corners=False)
    torch.testing.assert_close(vq.anomaly_map(inputs), expected)
    vq.map_type, vq.threshold = 'residual', None


def test_vq_restore_keeps_likely_codes_and_threshold_minus_inf_is_the_plain_vqvae(vq):
    inputs, images = images_of(vq, batch(3, seed=6))
    with torch.no_grad():
        vq.threshold = float('-inf')
        out = vq.restore(images)
        assert not out['mask'].any() and torch.equal(out['restored_codes'], out['codes'])
        vq.resample = None
        plain = vq.restore(images)['restored']
        vq.resample = 'sample'
        torch.testing.assert_close(out['restored'], plain)
        torch.testing.assert_close(out['restored'],
                                   vq.autoencoder.decoder(vq.quantizer.lookup(out['codes'])))
        vq.threshold = float(out['log_prob'].median())
        out = vq.restore(images)
        keep = ~out['mask']
        assert out['mask'].any() and keep.any()
        assert torch.equal(out['restored_codes'][keep], out['codes'][keep])
        again = vq.restore(images)
        assert torch.equal(again['restored_codes'], out['restored_codes'])
        vq.threshold = None


def test_vq_threshold_is_the_quantile_of_normal_code_log_likelihoods(vq):
    loader = [batch(2, seed=s) for s in (10, 11)]
    assert vq.fit_stage == 'after'
    stats = fit_normal(vq, loader)
    with torch.no_grad():
        logp = torch.cat([vq.code_log_probs(images_of(vq, d)[1])[1].flatten()
                          for d in loader]).double().numpy()
    expected = np.quantile(logp, vq.threshold_quantile)
    assert stats['code_threshold'][0] == pytest.approx(expected)
    assert float(vq.code_threshold) == pytest.approx(expected, rel=1e-6)
    assert bool(vq.threshold_fitted) and vq.resample_threshold() == pytest.approx(expected)
    # an explicit threshold is kept and nothing is fitted (no pass after training)
    vq.threshold = -2.0
    assert vq.fit_stage is None and vq.resample_threshold() == -2.0
    vq.threshold = None


def test_vq_stage_follows_the_runner_epoch():
    model, _ = build(VQ, vq_epochs=2)
    with training_progress(iter=3, max_epochs=3, epoch=1) as hub:
        assert model.current_stage() == 'vq'
        hub.update_info('epoch', 2)
        assert model.current_stage() == 'prior'
        hub.update_info('max_epochs', 2)
        with pytest.raises(ValueError, match='max_epochs'):
            model.current_stage()


def test_vq_checks_its_parts():
    with pytest.raises(ValueError, match='prior models 7 codes'):
        build(VQ, prior=dict(type='GatedPixelCNN', num_codes=7))
    with pytest.raises(TypeError, match='VectorQuantizer'):
        MODELS.build(dict(type='VQVAEPrior', autoencoder=dict(type='AutoEncoderNet')))


@pytest.mark.parametrize('config', [EDIT, EDIT_GAN])
def test_feature_editing_trains_fits_and_edits(config):
    model, wrappers = build(config)
    adversarial = config == EDIT_GAN
    assert isinstance(wrappers, OptimWrapperDict if adversarial else OptimWrapper)
    if adversarial:
        assert isinstance(model.discriminator, DCGANDiscriminator)
        assert sorted(wrappers.keys()) == ['autoencoder', 'discriminator']
    before = {n: state(getattr(model, n)) for n in model.optimized}
    model.train()
    for i in range(2):  # the discriminator is built for the config's 128x128
        log = model.train_step(batch(size=128, seed=i), wrappers)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in log.values()), log
    assert ('loss_adv' in log) == adversarial
    assert all(changed(getattr(model, n), before[n]) for n in model.optimized)
    model.eval()
    loader = [batch(2, seed=s) for s in (20, 21)]
    with torch.no_grad():
        latents = torch.cat([
            model.editor.flatten(model.autoencoder.encoder(images_of(model, d)[1]))
            for d in loader])
    stats = fit_normal(model, loader)
    assert sum(stats['cluster_sizes']) == latents.shape[0]
    editor = model.editor
    torch.testing.assert_close(editor.centres,
                               kmeans(latents, editor.num_clusters, iters=editor.iters,
                                      seed=editor.seed))
    inputs, images = images_of(model, batch(2, size=128, seed=7))
    with torch.no_grad():
        z = model.autoencoder.encoder(images)
        flat = editor.flatten(z)
        nearest = editor.centres[torch.cdist(flat, editor.centres).argmin(1)]
        edited = nearest.view(2, *z.shape[-2:], -1).permute(0, 3, 1, 2)
        expected = model.map_loss.map(model.autoencoder.decoder(edited), images)
    torch.testing.assert_close(model.anomaly_map(inputs), expected)
    samples = model.predict(inputs)
    assert all(s.anomaly_map.shape == (128, 128) for s in samples)


def test_feature_editing_subsamples_large_fits():
    model, _ = build(EDIT, max_fit_vectors=50)
    model.autoencoder.neck.num_clusters = 4
    model.autoencoder.neck.centres = torch.zeros(4, 32)
    model.train()
    stats = fit_normal(model, [batch(2, seed=1), batch(2, seed=2)])
    assert sum(stats['cluster_sizes']) == 50  # of 64 (4 images x 4x4)
    assert model.training and bool(model.editor.fitted)  # fitted in eval, mode restored
