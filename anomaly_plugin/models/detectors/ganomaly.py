"""GANomaly and Skip-GANomaly: adversarially trained reconstruction.

GANomaly (Akcay et al., ACCV 2018): an encoder-decoder-encoder generator
maps x -> z -> x_hat -> z_hat; trained on normal images with
``w_adv * ||f(x) - f(x_hat)||^2 + w_con * |x - x_hat|_1 + w_enc * ||z - z_hat||^2``
(f: the discriminator's last features), the discriminator with binary
cross-entropy. Image score ``||z - z_hat||_1`` (mean over the latent).

Skip-GANomaly (Akcay et al., IJCNN 2019): a U-Net generator with skip
connections; generator loss ``w_adv * BCE(D(x_hat), real) + w_con *
|x - x_hat|_1 + w_lat * ||f(x) - f(x_hat)||^2``; image score
``lambda * |x - x_hat|_1 + (1 - lambda) * ||f(x) - f(x_hat)||^2``.

Both also give the pixel map ``|x - x_hat|`` (channel mean), which the
papers do not evaluate.
"""
from typing import Dict, Optional

import torch

from anomaly_plugin.registry import MODELS

from ..networks import dcgan_init
from .multi_part import MultiPartDetector


class _ReconstructionGAN(MultiPartDetector):
    """Shared parts: generator, discriminator, losses, D re-initialisation.

    Args:
        generator: config of the generator.
        discriminator: config of the discriminator (returns logits and features).
        gan_loss: ``GANLoss`` config of the discriminator (and adversarial term).
        feature_loss: ``FeatureMatchingLoss`` config.
        weights: the generator's loss weights by term.
        reinit_d_below: re-initialise the discriminator when its loss falls
            below this value (as GANomaly's reference training does, so the
            generator keeps a gradient); 0 disables.
    """

    def __init__(self, generator: dict, discriminator: Optional[dict] = None,
                 gan_loss: Optional[dict] = None, feature_loss: Optional[dict] = None,
                 weights: Optional[Dict[str, float]] = None, reinit_d_below: float = 1e-5,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator = MODELS.build(generator)
        self.discriminator = MODELS.build(discriminator or dict(type='DCGANDiscriminator'))
        self.gan_loss = MODELS.build(gan_loss or dict(type='GANLoss', mode='vanilla'))
        self.feature_loss = MODELS.build(feature_loss or dict(type='FeatureMatchingLoss'))
        self.weights = dict(weights or {})
        self.reinit_d_below = float(reinit_d_below)

    def reconstruct(self, images: torch.Tensor):
        """Generator outputs for (B, C, H, W) images in [0, 1]; x_hat first."""
        raise NotImplementedError

    def loss_discriminator(self, images: torch.Tensor, fake: Optional[torch.Tensor] = None
                           ) -> Dict[str, torch.Tensor]:
        """The discriminator's loss on real ``images`` and generated ``fake``
        (computed without gradient when not given)."""
        if fake is None:
            with torch.no_grad():
                fake = self.reconstruct(images)[0]
        # separate passes, as the reference code does (BatchNorm statistics
        # of a real and of a generated batch)
        real_logits, _ = self.discriminator(images)
        fake_logits, _ = self.discriminator(fake.detach())
        return dict(loss_d_real=0.5 * self.gan_loss(real_logits, True),
                    loss_d_fake=0.5 * self.gan_loss(fake_logits, False))

    def loss_generator(self, images: torch.Tensor, out: Optional[tuple] = None
                       ) -> Dict[str, torch.Tensor]:
        """The generator's loss; ``out``: :meth:`reconstruct`'s outputs (with
        gradient), computed when not given."""
        raise NotImplementedError

    def loss_terms(self, images):
        return [lambda: self.loss_discriminator(images), lambda: self.loss_generator(images)]

    def train_parts(self, images, optim_wrapper):
        # one generator pass per step, as the reference training does
        def reinit(log_d):
            if self.reinit_d_below > 0 and float(log_d['loss_discriminator']) < self.reinit_d_below:
                dcgan_init(self.discriminator)

        return self.adversarial_update(optim_wrapper, lambda: self.reconstruct(images),
                                       lambda out: self.loss_discriminator(images, out[0]),
                                       lambda out: self.loss_generator(images, out), reinit)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(inputs)[0]


@MODELS.register_module()
class GANomaly(_ReconstructionGAN):
    """GANomaly detector; see the module docstring.

    Args:
        generator: ``EncoderDecoderEncoder`` config by default.
        weights: ``adv`` / ``con`` / ``enc`` weights (1 / 50 / 1, the paper's).
        Others: see :class:`_ReconstructionGAN`.
    """

    def __init__(self, generator: Optional[dict] = None, weights: Optional[dict] = None,
                 **kwargs):
        weights = {'adv': 1.0, 'con': 50.0, 'enc': 1.0, **(weights or {})}
        super().__init__(generator=generator or dict(type='EncoderDecoderEncoder'),
                         weights=weights, **kwargs)

    def reconstruct(self, images):
        return self.generator(images)  # x_hat, z, z_hat

    def loss_generator(self, images, out=None):
        x_hat, z, z_hat = self.reconstruct(images) if out is None else out
        f_real = self.discriminator(images)[1]
        f_fake = self.discriminator(x_hat)[1]
        w = self.weights
        return dict(loss_g_adv=w['adv'] * self.feature_loss(f_real, f_fake),
                    loss_g_con=w['con'] * (images - x_hat).abs().mean(),
                    loss_g_enc=w['enc'] * (z - z_hat).pow(2).mean())

    def forward_maps(self, inputs):
        images = self.data_preprocessor.denormalize(inputs)
        x_hat, z, z_hat = self.reconstruct(images)
        maps = (images - x_hat).abs().mean(1, keepdim=True)  # (B, 1, H, W)
        return maps, (z - z_hat).abs().flatten(1).mean(1)  # (B,)


@MODELS.register_module()
class SkipGANomaly(_ReconstructionGAN):
    """Skip-GANomaly detector; see the module docstring.

    Args:
        generator: by default pix2pix's :class:`UNet` at 64x64 (six 4x4
            stride-2 levels of 32-256 channels, see the config).
        weights: ``adv`` / ``con`` / ``lat`` weights (1 / 40 / 1, the paper's).
        score_lambda: weight of the reconstruction term in the image score
            (0.9, the paper's); the latent term gets ``1 - score_lambda``.
        Others: see :class:`_ReconstructionGAN`.
    """

    def __init__(self, generator: Optional[dict] = None, weights: Optional[dict] = None,
                 score_lambda: float = 0.9, **kwargs):
        weights = {'adv': 1.0, 'con': 40.0, 'lat': 1.0, **(weights or {})}
        super().__init__(generator=generator or dict(
            type='UNet', channels=(32, 64, 128, 256, 256, 256), down='stride', down_kernel=4,
            level_convs=1, act='leaky_relu', outer_norm=False, up_kernel=4, up_norm=True,
            merge_convs=0, skip_first=False, init='dcgan'), weights=weights,
                         **kwargs)
        if not 0.0 <= score_lambda <= 1.0:
            raise ValueError(f'SkipGANomaly: score_lambda must be in [0, 1], got {score_lambda}')
        self.score_lambda = float(score_lambda)

    def reconstruct(self, images):
        return (self.generator(images),)

    def loss_generator(self, images, out=None):
        x_hat = self.generator(images) if out is None else out[0]
        f_real = self.discriminator(images)[1]
        fake_logits, f_fake = self.discriminator(x_hat)
        w = self.weights
        return dict(loss_g_adv=w['adv'] * self.gan_loss(fake_logits, True),
                    loss_g_con=w['con'] * (images - x_hat).abs().mean(),
                    loss_g_lat=w['lat'] * self.feature_loss(f_real, f_fake))

    def forward_maps(self, inputs):
        images = self.data_preprocessor.denormalize(inputs)
        x_hat = self.generator(images)
        f_real = self.discriminator(images)[1]
        f_fake = self.discriminator(x_hat)[1]
        residual = (images - x_hat).abs()
        lam = self.score_lambda
        scores = (lam * residual.flatten(1).mean(1)
                  + (1 - lam) * self.feature_loss.per_sample(f_real, f_fake))
        return residual.mean(1, keepdim=True), scores  # (B, 1, H, W), (B,)
