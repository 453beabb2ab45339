"""The generative detectors: training steps, maps against direct computations."""
import copy

import pytest
import torch
from conftest import ROOT, training_progress
from mmengine.config import Config
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import enable_amp
from anomaly_plugin.models import gaussian_kl, gaussian_nll, gradient_attention
from anomaly_plugin.registry import MODELS
from anomaly_plugin.structures import AnomalyDataSample

CONFIGS = {
    'vae': 'configs/generative/vae_mvtec.py',
    'anogan': 'configs/generative/anogan_mvtec.py',
    'fanogan': 'configs/generative/fanogan_mvtec.py',
    'ganomaly': 'configs/generative/ganomaly_mvtec.py',
    'skip_ganomaly': 'configs/generative/skip_ganomaly_mvtec.py',
}
#: small overrides that keep the tests fast (the configs' sizes are kept)
FAST = {'anogan': {'search_iters': 5}}


def build(name, amp=False, **model_opts):
    cfg = Config.fromfile(str(ROOT / CONFIGS[name]))
    cfg.model.update({**FAST.get(name, {}), **model_opts})
    if amp:
        enable_amp(cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model, build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)), cfg


def batch(n=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(n)]
    return dict(inputs=imgs, data_samples=[AnomalyDataSample() for _ in range(n)])


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(module, before):
    return any(not torch.equal(p, before[k]) for k, p in module.named_parameters())


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_two_iterations_step_every_part_and_predict_input_size_maps(name):
    model, wrappers, cfg = build(name)
    parts = list(wrappers.keys()) if isinstance(wrappers, OptimWrapperDict) else None
    if name == 'fanogan':
        model.stage = 'gan'
        parts = ['generator', 'discriminator']
    before = {p: snapshot(getattr(model, p)) for p in parts or []}
    everything = snapshot(model)
    model.train()
    for _ in range(2):
        log = model.train_step(batch(), wrappers)
        assert log and all(torch.isfinite(torch.as_tensor(v)) for v in log.values()), log
    for p in parts or []:
        assert changed(getattr(model, p), before[p]), p
    assert changed(model, everything)
    if name == 'fanogan':
        model.stage = 'encoder'
        frozen = {p: snapshot(getattr(model, p)) for p in ('generator', 'discriminator')}
        enc = snapshot(model.encoder)
        model.train_step(batch(), wrappers)
        assert changed(model.encoder, enc)
        assert not any(changed(getattr(model, p), frozen[p]) for p in frozen)
    model.eval()
    data = model.data_preprocessor(batch(2, seed=1), False)
    samples = model.predict(data['inputs'])
    for s in samples:
        assert s.anomaly_map.shape == (64, 64)
        assert torch.isfinite(s.anomaly_map).all() and torch.isfinite(s.pred_score)


@pytest.mark.parametrize('name', ['ganomaly', 'fanogan'])
def test_amp_switches_every_part(name):
    model, wrappers, cfg = build(name, amp=True)
    kinds = {type(wrappers[k]).__name__ for k in wrappers.keys()}
    assert kinds == {'CPUBF16OptimWrapper'}
    model.stage = 'gan' if name == 'fanogan' else None
    log = model.train_step(batch(), wrappers)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log.values())


def test_fanogan_stage_follows_the_runner_epoch():
    model, _, _ = build('fanogan', gan_epochs=2)
    with training_progress(iter=7, max_epochs=3, epoch=1) as hub:
        assert model.current_stage() == ('gan', 7)
        hub.update_info('epoch', 2)
        assert model.current_stage() == ('encoder', 7)
        hub.update_info('max_epochs', 2)
        with pytest.raises(ValueError, match='max_epochs'):
            model.current_stage()


def _vae_reference(model, x, seed, num_samples=1):
    """Per-pixel NLL map and -ELBO of the VAE, written out with torch.distributions."""
    gen = torch.Generator().manual_seed(seed)
    mu, logvar, _ = model.encoder(x)
    nll_map, score = 0, 0
    for _ in range(num_samples):
        eps = torch.randn(mu.shape, generator=gen)
        mean, dec_logvar = model.decoder(mu + eps * torch.exp(0.5 * logvar))
        nll = -torch.distributions.Normal(mean, torch.exp(0.5 * dec_logvar)).log_prob(x)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
        nll_map = nll_map + nll.mean(1, keepdim=True)
        score = score + nll.flatten(1).mean(1) + kl.flatten(1).sum(1) / x[0].numel()
    return nll_map / num_samples, score / num_samples


@pytest.mark.parametrize('num_samples', [1, 3])
def test_vae_nll_map_and_elbo_score_equal_direct_computation(num_samples):
    model, _, _ = build('vae', num_samples=num_samples, seed=5)
    model.train()
    model.train_step(batch(), build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))))
    model.eval()
    inputs = model.data_preprocessor(batch(2, seed=3), False)['inputs']
    maps, scores = model.forward_maps(inputs)
    x = model.data_preprocessor.denormalize(inputs)
    with torch.no_grad():
        ref_map, ref_score = _vae_reference(model, x, 5, num_samples)
    torch.testing.assert_close(maps, ref_map, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scores, ref_score, rtol=1e-4, atol=1e-5)


def test_vae_loss_is_nll_plus_beta_kl_per_element():
    model, _, _ = build('vae', beta=0.5)
    model.eval()  # BatchNorm fixed, so the test can redo the forward pass
    inputs = model.data_preprocessor(batch(2), False)['inputs']
    x = model.data_preprocessor.denormalize(inputs)
    torch.manual_seed(1)
    losses = model.loss(inputs)
    torch.manual_seed(1)
    mu, logvar, _ = model.encoder(x)
    mean, dec_logvar = model.decoder(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar))
    torch.testing.assert_close(losses['loss_nll'], gaussian_nll(x, mean, dec_logvar).mean())
    torch.testing.assert_close(losses['loss_kl'],
                               0.5 * (gaussian_kl(mu, logvar) / x[0].numel()).mean())


@pytest.mark.parametrize('map_type', ['gradient', 'combined'])
def test_vae_gradient_maps_equal_autograd_of_the_elbo(map_type):
    model, _, _ = build('vae', map_type=map_type, num_samples=2, seed=2)
    model.eval()
    inputs = model.data_preprocessor(batch(2), False)['inputs']
    with torch.no_grad():  # as in the test loop: the model turns gradients on itself
        maps, _ = model.forward_maps(inputs)
    x = model.data_preprocessor.denormalize(inputs).requires_grad_(True)
    _, score = _vae_reference(model, x, 2, num_samples=2)
    grad, = torch.autograd.grad(score.sum(), x)
    ref = grad.abs().mean(1, keepdim=True)
    if map_type == 'combined':
        with torch.no_grad():
            mean, _ = model.decoder(model.encoder(x)[0])
            ref = ref * (x - mean).pow(2).mean(1, keepdim=True)
    torch.testing.assert_close(maps, ref, rtol=1e-4, atol=1e-9)
    assert maps.shape == (2, 1, 64, 64)


def test_vae_gradient_attention_map_and_loss():
    model, wrapper, _ = build('vae', map_type='gradient_attention', attention_loss_weight=1.0)
    model.eval()
    inputs = model.data_preprocessor(batch(2), False)['inputs']
    with torch.no_grad():
        maps, _ = model.forward_maps(inputs)
    x = model.data_preprocessor.denormalize(inputs)
    feats = model.encoder.features(x).detach().requires_grad_(True)
    ref = gradient_attention(feats, model.encoder.forward_head(feats)[0])
    ref = torch.nn.functional.interpolate(ref, size=(64, 64), mode='bilinear')
    torch.testing.assert_close(maps, ref)
    assert maps.amax() > 0
    # the attention-expansion term trains the encoder through the gradients
    model.train()
    losses = model.loss(inputs)
    assert 0 <= losses['loss_att'] <= 1
    losses['loss_att'].backward()
    assert model.encoder.features[0][0].weight.grad.abs().sum() > 0


def test_anogan_latent_search_descends_and_is_deterministic():
    model, wrappers, _ = build('anogan', search_iters=30)
    model.train()
    for _ in range(3):
        model.train_step(batch(), wrappers)
    model.eval()
    x = model.data_preprocessor.denormalize(
        model.data_preprocessor(batch(3, seed=2), False)['inputs'])
    scores, fake, history = model.latent_search(x)
    assert len(history) == 30 and history[-1] < history[0]
    steps = torch.tensor(history).diff()
    assert (steps < 0).float().mean() > 0.8  # descends on almost every step
    assert scores.mean() <= history[-1]
    again, fake2, _ = model.latent_search(x)
    assert torch.equal(scores, again) and torch.equal(fake, fake2)
    # no parameter received a gradient from the search
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.parameters())


def test_ganomaly_and_skip_ganomaly_scores_follow_their_papers():
    model, _, _ = build('ganomaly')
    model.eval()
    inputs = model.data_preprocessor(batch(2), False)['inputs']
    x = model.data_preprocessor.denormalize(inputs)
    with torch.no_grad():
        maps, scores = model.forward_maps(inputs)
        x_hat, z, z_hat = model.generator(x)
    torch.testing.assert_close(scores, (z - z_hat).abs().mean(1))
    torch.testing.assert_close(maps, (x - x_hat).abs().mean(1, keepdim=True))
    model, _, _ = build('skip_ganomaly', score_lambda=0.7)
    model.eval()
    with torch.no_grad():
        maps, scores = model.forward_maps(inputs)
        x_hat = model.generator(x)
        f = model.discriminator(x)[1] - model.discriminator(x_hat)[1]
    ref = 0.7 * (x - x_hat).abs().flatten(1).mean(1) + 0.3 * f.pow(2).flatten(1).mean(1)
    torch.testing.assert_close(scores, ref)


def test_a_plain_optim_wrapper_is_refused_with_the_recipe():
    model, _, _ = build('ganomaly')
    plain = build_optim_wrapper(model, dict(type='OptimWrapper',
                                            optimizer=dict(type='Adam', lr=1e-3)))
    with pytest.raises(TypeError, match='MultiOptimWrapperConstructor'):
        model.train_step(batch(), plain)


@pytest.mark.parametrize('name', ['anogan', 'ganomaly', 'skip_ganomaly'])
def test_one_generator_pass_per_step(name):
    # the generated batch serves both updates: the generator runs once per
    # step and its BatchNorm statistics move once
    model, wrappers, _ = build(name)
    calls = []
    model.generator.register_forward_hook(lambda *args: calls.append(1))
    norms = [m for m in model.generator.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms
    model.train()
    model.train_step(batch(), wrappers)
    model.train_step(batch(seed=1), wrappers)
    assert len(calls) == 2
    assert all(int(m.num_batches_tracked) == 2 for m in norms)
