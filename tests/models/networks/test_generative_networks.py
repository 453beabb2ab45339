"""Networks and losses of the generative family, checked against direct computations."""
import math

import pytest
import torch
from mmengine.optim import OptimWrapperDict
from torch import nn

from anomaly_plugin.engine import MultiOptimWrapperConstructor
from anomaly_plugin.models import (
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANGenerator,
    FeatureMatchingLoss,
    GANLoss,
    UNet,
    VAEDecoder,
    VAEEncoder,
    gaussian_kl,
    gaussian_nll,
    gradient_attention,
    gradient_penalty,
)


@pytest.mark.parametrize('size', [(32, 32), (64, 64), (32, 64)])
def test_dcgan_stacks_fit_the_image_size(size):
    x = torch.rand(2, 3, *size)
    z, feats = DCGANEncoder(size, out_dim=7, base_channels=8).forward_features(x)
    assert z.shape == (2, 7)
    assert feats.shape[-2:] == (4, 4 * size[1] // size[0])
    logits, _ = DCGANDiscriminator(size, base_channels=8)(x)
    assert logits.shape == (2,)
    img = DCGANGenerator(size, latent_dim=7, base_channels=8)(z)
    assert img.shape == (2, 3, *size) and 0 <= img.min() and img.max() <= 1
    pix2pix = UNet(channels=(8, 16, 32, 64), down='stride', down_kernel=4, level_convs=1,
                   act='leaky_relu', outer_norm=False, up_kernel=4, up_norm=True,
                   merge_convs=0, skip_first=False, init='dcgan')
    assert pix2pix(x).shape == x.shape


@pytest.mark.parametrize('size', [48, (64, 40), 4])
def test_dcgan_refuses_sizes_it_cannot_fit(size):
    with pytest.raises(ValueError, match='image_size'):
        DCGANEncoder(size)


@pytest.mark.parametrize('latent', ['vector', 'spatial'])
def test_vae_nets_shapes(latent):
    enc = VAEEncoder(32, channels=(8, 16), latent_dim=5, latent=latent)
    dec = VAEDecoder(32, channels=(16, 8), latent_dim=5, latent=latent)
    mu, logvar, feats = enc(torch.rand(2, 3, 32, 32))
    assert mu.shape == logvar.shape == ((2, 5) if latent == 'vector' else (2, 5, 8, 8))
    assert feats.shape == (2, 16, 8, 8)
    mean, dec_logvar = dec(mu)
    assert mean.shape == (2, 3, 32, 32) and dec_logvar.shape == mean.shape
    assert dec_logvar.min() >= -9.0 and dec_logvar.max() <= 9.0 / 4


def test_gaussian_nll_and_kl_equal_their_formulas():
    g = torch.Generator().manual_seed(0)
    x, mean = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    logvar = torch.randn(2, 3, 4, 4, generator=g)
    ref = -torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x)
    torch.testing.assert_close(gaussian_nll(x, mean, logvar), ref)
    mu, lv = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * lv))
    p = torch.distributions.Normal(torch.zeros(3, 6), torch.ones(3, 6))
    torch.testing.assert_close(gaussian_kl(mu, lv),
                               torch.distributions.kl_divergence(q, p).sum(1))


def test_gan_losses():
    logits = torch.tensor([2.0, -1.0])
    bce = GANLoss('vanilla')
    assert bce(logits, True).item() == pytest.approx(
        (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2)
    assert bce(logits, False).item() == pytest.approx(
        (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2)
    assert GANLoss('wgan')(logits, True).item() == pytest.approx(-0.5)
    assert GANLoss('lsgan')(logits, False).item() == pytest.approx(2.5)
    fm = FeatureMatchingLoss('l2')
    a, b = torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)
    b[1] = 3
    assert fm.per_sample(a, b).tolist() == [1.0, 9.0]
    assert fm(a, b).item() == 5.0


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = <w, x>: grad_x D = w everywhere, penalty = (||w|| - 1)^2
    critic = nn.Sequential(nn.Flatten(1), nn.Linear(12, 1, bias=False))
    nn.init.constant_(critic[1].weight, 0.5)
    real, fake = torch.rand(4, 3, 2, 2), torch.rand(4, 3, 2, 2)
    gp = gradient_penalty(lambda x: critic(x)[:, 0], real, fake)
    assert gp.item() == pytest.approx((0.5 * math.sqrt(12) - 1) ** 2, rel=1e-5)
    gp.backward()  # differentiable w.r.t. the critic
    assert critic[1].weight.grad.abs().sum() > 0


def test_gradient_attention_is_the_relu_of_the_channel_the_latent_reads():
    # z_0 = spatial mean of channel 1: alpha_01 = 1 / (h w), others 0, so the
    # map is ReLU(A_1) / (h w); with a second latent reading -channel 2 the
    # mean over the latents adds ReLU(-A_2) / (h w)
    feats = torch.randn(2, 4, 5, 6, requires_grad=True)
    latent = feats[:, 1].mean((1, 2), keepdim=False).unsqueeze(1)  # (B, 1)
    got = gradient_attention(feats, latent)
    torch.testing.assert_close(got, torch.relu(feats[:, 1:2]).detach() / 30)
    latent2 = torch.stack([feats[:, 1].mean((1, 2)), -feats[:, 2].mean((1, 2))], 1)
    got2 = gradient_attention(feats, latent2)
    ref2 = (torch.relu(feats[:, 1:2]) + torch.relu(-feats[:, 2:3])).detach() / 30 / 2
    torch.testing.assert_close(got2, ref2)


class _TwoParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator, self.discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
        self.extra = nn.Linear(1, 1)


def test_multi_optim_wrapper_constructor():
    cfg = dict(generator=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
               discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=0.2)))
    model = _TwoParts()
    model.extra.requires_grad_(False)
    wrappers = MultiOptimWrapperConstructor(cfg)(model)
    assert isinstance(wrappers, OptimWrapperDict)
    assert wrappers['discriminator'].optimizer.param_groups[0]['lr'] == 0.2
    assert {id(p) for p in wrappers['generator'].optimizer.param_groups[0]['params']} == {
        id(p) for p in model.generator.parameters()}
    model.extra.requires_grad_(True)
    with pytest.raises(ValueError, match='extra.weight'):
        MultiOptimWrapperConstructor(cfg)(model)
    with pytest.raises(KeyError, match='encoder'):
        MultiOptimWrapperConstructor({**cfg, 'encoder': cfg['generator']})(_TwoParts())
