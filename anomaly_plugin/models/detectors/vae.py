"""Variational autoencoder with likelihood, gradient-attention and gradient maps.

Kingma & Welling (ICLR 2014): encoder q(z|x) = N(mu, diag(exp(logvar))),
Gaussian decoder p(x|z) = N(mean, exp(logvar_x)) per pixel; trained on
normal images with the negative ELBO. Here both terms are divided by the
number of image elements C*H*W (the per-element NLL plus
``beta * KL / (C*H*W)``): the ELBO up to a constant factor, so ``beta``
keeps its meaning and the logged values do not depend on the image size.

Anomaly maps (``map_type``):

- ``'nll'``: per-pixel negative log-likelihood of the input under the
  decoder's Gaussian (channel mean), averaged over ``num_samples`` posterior
  samples drawn with a fixed seed.
- ``'gradient_attention'``: Liu et al., CVPR 2020: for each latent
  dimension z_i, ``alpha_ik`` = spatial mean of dz_i/dA_k over the last
  encoder feature map A; ``M_i = ReLU(sum_k alpha_ik A_k)``; the map is the
  mean of M_i over i, upsampled (bilinear) to the input. A spatial latent's
  z_i is the spatial mean of its channel i. With
  ``attention_loss_weight > 0`` training adds an attention-expansion term
  in the spirit of CAVGA (Venkataramanan et al., ECCV 2020):
  ``1 - mean(M / max(M))`` over the normal training images, which asks the
  attention to cover all of a normal image. This term's exact form is the
  project's own.
- ``'gradient'``: Zimmerer et al. 2018: ``|d(-ELBO)/dx|`` per pixel
  (channel mean), with z at the posterior samples.
- ``'combined'``: the squared reconstruction error (decoder mean at z =
  mu, channel mean) times the gradient map, the combination that paper
  reports as best.

Image score (``image_score``): ``'elbo'``, the negative ELBO per element
(mean over the samples), or ``'map'``, the post-processor's ``reduction``
(max or mean) of the smoothed map.
"""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from anomaly_plugin.registry import MODELS

from ..losses import gaussian_kl, gaussian_nll
from ..ops import gradient_attention
from .base import BaseAnomalyDetector

MAP_TYPES = ('nll', 'gradient_attention', 'gradient', 'combined')


@MODELS.register_module()
class VAE(BaseAnomalyDetector):
    """Variational autoencoder detector; see the module docstring.

    Args:
        encoder: ``VAEEncoder`` config (returns mu, logvar and the features).
        decoder: ``VAEDecoder`` config (returns the mean and log-variance).
        beta: weight of the KL term (1 = the ELBO).
        map_type: one of ``'nll'``, ``'gradient_attention'``, ``'gradient'``,
            ``'combined'``.
        image_score: ``'elbo'`` or ``'map'``.
        num_samples: posterior samples at test time (NLL map, ELBO score,
            gradient maps).
        seed: seed of the test-time posterior samples.
        attention_loss_weight: weight of the attention-expansion term; 0 off.
    """

    def __init__(self, encoder: Optional[dict] = None, decoder: Optional[dict] = None,
                 beta: float = 1.0, map_type: str = 'nll', image_score: str = 'elbo',
                 num_samples: int = 4, seed: int = 0, attention_loss_weight: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if map_type not in MAP_TYPES:
            raise ValueError(f'VAE: map_type must be one of {MAP_TYPES}, got {map_type!r}')
        if image_score not in ('elbo', 'map'):
            raise ValueError(f"VAE: image_score must be 'elbo' or 'map', got {image_score!r}")
        if num_samples < 1:
            raise ValueError(f'VAE: num_samples must be >= 1, got {num_samples}')
        self.encoder = MODELS.build(encoder or dict(type='VAEEncoder'))
        self.decoder = MODELS.build(decoder or dict(type='VAEDecoder'))
        self.beta, self.map_type, self.image_score = float(beta), map_type, image_score
        self.num_samples, self.seed = int(num_samples), int(seed)
        self.attention_loss_weight = float(attention_loss_weight)

    # -- pieces ------------------------------------------------------------
    @staticmethod
    def latent_vector(mu: torch.Tensor) -> torch.Tensor:
        """(B, D) or spatial (B, D, h, w) -> (B, D) (spatial mean per channel)."""
        return mu if mu.dim() == 2 else mu.mean((2, 3))

    def neg_elbo_terms(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                       noise: Callable[[torch.Tensor], torch.Tensor]
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-element NLL map (B, C, H, W), KL per element (B,) and the mean.

        ``noise(mu)`` gives the standard normal draw of the reparameterisation.
        """
        z = mu + noise(mu) * torch.exp(0.5 * logvar)
        mean, dec_logvar = self.decoder(z)
        nll = gaussian_nll(x, mean, dec_logvar)  # (B, C, H, W)
        kl = gaussian_kl(mu, logvar) / x[0].numel()  # (B,)
        return nll, kl, mean

    def attention(self, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """Gradient-attention map (B, 1, h, w) of images x in [0, 1]."""
        with torch.enable_grad():
            feats = self.encoder.features(x)
            if not feats.requires_grad:  # frozen encoder at test time
                feats = feats.detach().requires_grad_(True)
            mu, _ = self.encoder.forward_head(feats)
            return gradient_attention(feats, self.latent_vector(mu), create_graph)

    # -- training ----------------------------------------------------------
    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        x = self.data_preprocessor.denormalize(inputs)  # (B, C, H, W) in [0, 1]
        mu, logvar, _ = self.encoder(x)
        nll, kl, _ = self.neg_elbo_terms(x, mu, logvar, torch.randn_like)
        losses = dict(loss_nll=nll.mean(), loss_kl=self.beta * kl.mean())
        if self.attention_loss_weight > 0:
            att = self.attention(x, create_graph=True).flatten(1)  # (B, h*w)
            att = att / att.max(1, keepdim=True).values.clamp_min(1e-8)
            losses['loss_att'] = self.attention_loss_weight * (1 - att.mean(1)).mean()
        return losses

    # -- test --------------------------------------------------------------
    def _noise(self, device) -> Callable[[torch.Tensor], torch.Tensor]:
        gen = torch.Generator(device=device).manual_seed(self.seed)
        return lambda t: torch.randn(t.shape, device=t.device, dtype=t.dtype, generator=gen)

    def sampled_terms(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sample-mean per-pixel NLL (B, 1, H, W) and negative ELBO per element (B,)."""
        mu, logvar, _ = self.encoder(x)
        noise = self._noise(x.device)
        nll_map, score = 0.0, 0.0
        for _ in range(self.num_samples):
            nll, kl, _ = self.neg_elbo_terms(x, mu, logvar, noise)
            nll_map = nll_map + nll.mean(1, keepdim=True)
            score = score + nll.flatten(1).mean(1) + kl
        return nll_map / self.num_samples, score / self.num_samples

    def forward_maps(self, inputs):
        x = self.data_preprocessor.denormalize(inputs)
        if self.map_type in ('gradient', 'combined'):
            # one pass gives the score and, by autograd, |d(-ELBO)/dx|
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)
                _, score = self.sampled_terms(x)
                grad, = torch.autograd.grad(score.sum(), x)
            x, score = x.detach(), score.detach()
            maps = grad.abs().mean(1, keepdim=True)  # (B, 1, H, W)
            if self.map_type == 'combined':
                mean, _ = self.decoder(self.encoder(x)[0])  # z = mu
                maps = maps * (x - mean).pow(2).mean(1, keepdim=True)
        else:
            nll_map, score = self.sampled_terms(x)
            maps = nll_map if self.map_type == 'nll' else F.interpolate(
                self.attention(x).detach(), size=x.shape[-2:], mode='bilinear',
                align_corners=False)
        return maps, (score if self.image_score == 'elbo' else None)

    def anomaly_map(self, inputs):
        return self.forward_maps(inputs)[0]
