"""AnoGAN and f-AnoGAN: a GAN of normal images, inverted at test time.

AnoGAN (Schlegl et al., IPMI 2017): a DCGAN learns normal images; a test
image x is mapped to the latent space by gradient descent on z (Adam) over
``(1 - lambda) * sum|x - G(z)| + lambda * sum|f(x) - f(G(z))|`` (residual
and discrimination loss, f: the discriminator's last features). The final
loss is the image score, ``|x - G(z*)|`` the pixel map.

f-AnoGAN (Schlegl et al., Medical Image Analysis 2019), the izi_f variant:
a WGAN-GP is trained first; then, with generator and critic fixed, an
encoder E is trained to minimise
``A(x) = mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2``;
A(x) is the image score (one forward pass) and ``|x - G(E(x))|`` the map.
"""
from typing import Dict, List, Optional, Tuple

import torch

from anomaly_plugin.registry import MODELS

from ..losses import gradient_penalty
from ..utils import frozen
from .multi_part import MultiPartDetector


def _latent(generator: torch.nn.Module) -> int:
    dim = getattr(generator, 'latent_dim', None)
    if dim is None:
        raise ValueError(f'{type(generator).__name__} has no latent_dim attribute; the '
                         'generator must say the size of its input vector')
    return int(dim)


@MODELS.register_module()
class AnoGAN(MultiPartDetector):
    """DCGAN trained on normal images, scored by latent search at test time.

    Args:
        generator: ``DCGANGenerator`` config by default.
        discriminator: ``DCGANDiscriminator`` config by default.
        gan_loss: ``GANLoss`` config (``'vanilla'``: DCGAN's cross-entropy).
        search_iters: Adam steps of the latent search per test batch (the
            paper uses 500; fewer are cheaper and often enough).
        search_lr: Adam learning rate on z.
        lambda_: weight of the discrimination loss in the search objective
            and score (0.1, the paper's).
        seed: seed of the latent initialisation (the same per batch, so
            scores do not depend on the order images come in).
    """

    def __init__(self, generator: Optional[dict] = None, discriminator: Optional[dict] = None,
                 gan_loss: Optional[dict] = None, search_iters: int = 100,
                 search_lr: float = 0.05, lambda_: float = 0.1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.generator = MODELS.build(generator or dict(type='DCGANGenerator'))
        self.discriminator = MODELS.build(discriminator or dict(type='DCGANDiscriminator'))
        self.gan_loss = MODELS.build(gan_loss or dict(type='GANLoss', mode='vanilla'))
        self.latent_dim = _latent(self.generator)
        if search_iters < 1 or not 0.0 <= lambda_ <= 1.0:
            raise ValueError(f'AnoGAN: search_iters must be >= 1 and lambda_ in [0, 1], got '
                             f'{search_iters} and {lambda_}')
        self.search_iters, self.search_lr = int(search_iters), float(search_lr)
        self.lambda_, self.seed = float(lambda_), int(seed)

    def sample_z(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=device)  # (n, D)

    def loss_discriminator(self, images, fake=None):
        """The discriminator's loss on real ``images`` and generated ``fake``
        (drawn without gradient when not given)."""
        if fake is None:
            with torch.no_grad():
                fake = self.generator(self.sample_z(images.shape[0], images.device))
        real_logits, _ = self.discriminator(images)
        fake_logits, _ = self.discriminator(fake.detach())
        return dict(loss_d_real=0.5 * self.gan_loss(real_logits, True),
                    loss_d_fake=0.5 * self.gan_loss(fake_logits, False))

    def loss_generator(self, images, fake=None):
        """The generator's adversarial loss on ``fake`` (drawn when not given)."""
        if fake is None:
            fake = self.generator(self.sample_z(images.shape[0], images.device))
        return dict(loss_g_adv=self.gan_loss(self.discriminator(fake)[0], True))

    def loss_terms(self, images):
        return [lambda: self.loss_discriminator(images), lambda: self.loss_generator(images)]

    def train_parts(self, images, optim_wrapper):
        # one generated batch per step (DCGAN's training)
        return self.adversarial_update(
            optim_wrapper, lambda: self.generator(self.sample_z(images.shape[0], images.device)),
            lambda fake: self.loss_discriminator(images, fake),
            lambda fake: self.loss_generator(images, fake))

    def search_objective(self, images: torch.Tensor, feats: torch.Tensor, z: torch.Tensor
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-image objective (B,) at ``z`` and the generated images."""
        fake = self.generator(z)
        residual = (images - fake).abs().flatten(1).sum(1)
        discrimination = (feats - self.discriminator(fake)[1]).abs().flatten(1).sum(1)
        return (1 - self.lambda_) * residual + self.lambda_ * discrimination, fake

    def latent_search(self, images: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor, List[float]]:
        """Map images (B, C, H, W) in [0, 1] to the latent space.

        Every image has its own z; Adam's update is element-wise, so the
        batched search equals one search per image.

        Returns:
            Final objective (B,) (the anomaly score), G(z*) (B, C, H, W) and
            the batch-mean objective before each step.
        """
        gen = torch.Generator(device=images.device).manual_seed(self.seed)
        z = torch.randn(images.shape[0], self.latent_dim, device=images.device,
                        generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.search_lr)
        history = []
        with torch.enable_grad(), frozen(self.generator, self.discriminator):
            feats = self.discriminator(images)[1].detach()
            for _ in range(self.search_iters):
                objective, _ = self.search_objective(images, feats, z)
                history.append(float(objective.detach().mean()))
                opt.zero_grad()
                objective.sum().backward()
                opt.step()
        with torch.no_grad():
            objective, fake = self.search_objective(images, feats, z)
        return objective, fake, history

    def forward_maps(self, inputs):
        images = self.data_preprocessor.denormalize(inputs)
        scores, fake, _ = self.latent_search(images)
        return (images - fake).abs().mean(1, keepdim=True), scores  # (B, 1, H, W), (B,)

    def anomaly_map(self, inputs):
        return self.forward_maps(inputs)[0]


@MODELS.register_module()
class FAnoGAN(MultiPartDetector):
    """f-AnoGAN (izi_f): WGAN-GP, then an encoder, from one training run.

    The first ``gan_epochs`` epochs train the WGAN-GP (the critic every
    iteration, the generator every ``n_critic``-th); the remaining epochs of
    ``train_cfg.max_epochs`` train the encoder with generator and critic
    fixed (eval mode). The stage follows the runner's epoch, so ``--resume``
    continues in the right one.

    Args:
        generator: ``DCGANGenerator`` config by default.
        discriminator: the critic; ``DCGANDiscriminator`` with
            ``norm='layer'`` by default (no BatchNorm under a gradient penalty).
        encoder: ``DCGANEncoder`` config with ``out_dim`` = the latent size.
        gan_epochs: epochs of the WGAN-GP stage (scaled with the loop's epochs
            on a small set, see :meth:`scaled_epochs`).
        n_critic: critic steps per generator step (5 in WGAN-GP).
        gp_weight: weight of the gradient penalty (10 in WGAN-GP).
        kappa: weight of the critic-feature residual in izi_f and the score.
    """

    optimized = ('generator', 'discriminator', 'encoder')

    def __init__(self, generator: Optional[dict] = None, discriminator: Optional[dict] = None,
                 encoder: Optional[dict] = None, gan_epochs: int = 1, n_critic: int = 5,
                 gp_weight: float = 10.0, kappa: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = MODELS.build(generator or dict(type='DCGANGenerator'))
        self.discriminator = MODELS.build(
            discriminator or dict(type='DCGANDiscriminator', norm='layer'))
        self.latent_dim = _latent(self.generator)
        self.encoder = MODELS.build(encoder or dict(type='DCGANEncoder',
                                                    out_dim=self.latent_dim))
        if gan_epochs < 1 or n_critic < 1:
            raise ValueError(f'FAnoGAN: gan_epochs and n_critic must be >= 1, got '
                             f'{gan_epochs} and {n_critic}')
        self.gan_epochs, self.n_critic = int(gan_epochs), int(n_critic)
        self.gp_weight, self.kappa = float(gp_weight), float(kappa)
        #: ``'gan'`` or ``'encoder'`` to force a stage (tests, notebooks);
        #: None follows the runner's epoch
        self.stage: Optional[str] = None

    def current_stage(self) -> Tuple[str, int]:
        """(``'gan'`` or ``'encoder'``, iteration)."""
        it, epoch, max_epochs = self.train_progress()
        if self.stage is not None:
            return self.stage, it
        gan_epochs = self.scaled_epochs(self.gan_epochs)
        if 0 < max_epochs <= gan_epochs:
            raise ValueError(
                f'FAnoGAN: train_cfg.max_epochs ({max_epochs}) must be larger than '
                f'model.gan_epochs ({gan_epochs}): the epochs after the WGAN-GP stage '
                'train the encoder')
        return ('gan' if epoch < gan_epochs else 'encoder'), it

    def sample_z(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=device)  # (n, D)

    def loss_critic(self, images):
        with torch.no_grad():
            fake = self.generator(self.sample_z(images.shape[0], images.device))
        return dict(loss_d_wgan=self.discriminator(fake)[0].mean()
                    - self.discriminator(images)[0].mean(),
                    loss_d_gp=self.gp_weight * gradient_penalty(self.discriminator, images,
                                                                fake))

    def loss_generator(self, images):
        fake = self.generator(self.sample_z(images.shape[0], images.device))
        return dict(loss_g_wgan=-self.discriminator(fake)[0].mean())

    def izif(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-image izi_f terms (B,) (image, critic-feature) and G(E(x))."""
        rec = self.generator(self.encoder(images))
        f_real = self.discriminator(images)[1]
        f_rec = self.discriminator(rec)[1]
        return ((images - rec).pow(2).flatten(1).mean(1),
                (f_real - f_rec).pow(2).flatten(1).mean(1), rec)

    def loss_encoder(self, images):
        img, feat, _ = self.izif(images)
        return dict(loss_e_img=img.mean(), loss_e_feat=self.kappa * feat.mean())

    def loss_terms(self, images):
        return [lambda: self.loss_critic(images), lambda: self.loss_generator(images),
                lambda: self.loss_encoder(images)]

    def train_parts(self, images, optim_wrapper) -> Dict[str, torch.Tensor]:
        stage, it = self.current_stage()
        if stage == 'gan':
            log = self.update(optim_wrapper, 'discriminator', lambda: self.loss_critic(images))
            if it % self.n_critic == 0:
                log.update(self.update(optim_wrapper, 'generator',
                                       lambda: self.loss_generator(images),
                                       freeze=('discriminator',)))
            return log
        # encoder stage: G and the critic fixed, their BatchNorm statistics too
        self.generator.eval()
        self.discriminator.eval()
        return self.update(optim_wrapper, 'encoder', lambda: self.loss_encoder(images),
                           freeze=('generator', 'discriminator'))

    def forward_maps(self, inputs):
        images = self.data_preprocessor.denormalize(inputs)
        img, feat, rec = self.izif(images)
        return (images - rec).abs().mean(1, keepdim=True), img + self.kappa * feat

    def anomaly_map(self, inputs):
        return self.forward_maps(inputs)[0]
