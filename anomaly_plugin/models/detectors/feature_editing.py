"""Autoencoder with latent feature editing by k-means, optionally adversarial.

The formulation is the project's own, after the anomaly-feature-editing idea
(Tsai et al., WACV 2022; "An anomaly feature-editing-based adversarial
network for texture defect visual inspection", IEEE TII), whose exact
equations are not reproduced here:

* training: an autoencoder reconstructs normal images (``loss``, L2 by
  default); with a ``discriminator`` it is also trained adversarially, the
  discriminator telling inputs from reconstructions and the autoencoder
  adding ``adv_weight`` times the adversarial loss of its reconstructions
  (one optimizer per part, MMEngine's ``OptimWrapperDict``);
* after training, ``NormalFitHook`` (``fit_stage='after'``) fits k-means
  centres on the latent vectors of the normal training images
  (``LatentKMeansEditor``, saved in the checkpoint);
* test: every latent vector moves towards its nearest centre before
  decoding; the map is the ``map_loss`` loss's per-pixel map between the
  input and this edited reconstruction.
"""
import warnings
from typing import Dict, List, Optional

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict

from anomaly_plugin.registry import MODELS

from .autoencoder import reconstruction_losses
from .multi_part import MultiPartDetector


@MODELS.register_module()
class FeatureEditingAE(MultiPartDetector):
    """Encoder -> latent editor -> decoder.

    Args:
        autoencoder: ``AutoEncoderNet`` config whose neck is a
            ``LatentKMeansEditor``.
        discriminator: config of a discriminator returning ``(logits,
            features)`` (``DCGANDiscriminator``), or None for plain training
            with one optimizer.
        gan_loss: ``GANLoss`` config (vanilla by default).
        adv_weight: weight of the adversarial term in the autoencoder's loss.
        loss: reconstruction loss (``L2Loss``).
        map_loss: loss whose ``map`` is the anomaly map; defaults to ``loss``.
        max_fit_vectors: latent vectors k-means is fitted on at most (a
            seeded random subset when there are more).
        seed: seed of that subset.
    """

    def __init__(self, autoencoder: Optional[dict] = None,
                 discriminator: Optional[dict] = None, gan_loss: Optional[dict] = None,
                 adv_weight: float = 0.01, loss: Optional[dict] = None,
                 map_loss: Optional[dict] = None, max_fit_vectors: int = 200_000,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.autoencoder = MODELS.build(autoencoder or dict(
            type='AutoEncoderNet', neck=dict(type='LatentKMeansEditor')))
        if not callable(getattr(self.autoencoder.neck, 'fit', None)):
            raise TypeError(f'FeatureEditingAE: the autoencoder neck must be a latent editor '
                            f'with a fit method (LatentKMeansEditor), got '
                            f'{type(self.autoencoder.neck).__name__}')
        self.discriminator = MODELS.build(discriminator) if discriminator else None
        self.gan_loss = MODELS.build(gan_loss or dict(type='GANLoss', mode='vanilla'))
        self.optimized = (('autoencoder', 'discriminator') if self.discriminator is not None
                          else ('autoencoder',))
        self.adv_weight = float(adv_weight)
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.map_loss = MODELS.build(map_loss) if map_loss else self.loss_fn
        if max_fit_vectors < 1:
            raise ValueError(f'FeatureEditingAE: max_fit_vectors must be >= 1, got '
                             f'{max_fit_vectors}')
        self.max_fit_vectors, self.seed = int(max_fit_vectors), int(seed)

    @property
    def editor(self):
        return self.autoencoder.neck

    # -- training ---------------------------------------------------------------
    def train_step(self, data, optim_wrapper):
        """One optimizer: MMEngine's usual step; with a discriminator: both parts."""
        if self.discriminator is None and not isinstance(optim_wrapper, OptimWrapperDict):
            return BaseModel.train_step(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)

    def loss_autoencoder(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        rec = self.autoencoder(images)
        losses = reconstruction_losses(self.loss_fn, rec, images)
        if self.discriminator is not None:
            losses['loss_adv'] = self.adv_weight * self.gan_loss(self.discriminator(rec)[0], True)
        return losses

    def loss_discriminator(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            rec = self.autoencoder(images)
        return dict(loss_d_real=0.5 * self.gan_loss(self.discriminator(images)[0], True),
                    loss_d_fake=0.5 * self.gan_loss(self.discriminator(rec)[0], False))

    def loss_terms(self, images):
        terms = [lambda: self.loss_autoencoder(images)]
        if self.discriminator is not None:
            terms.append(lambda: self.loss_discriminator(images))
        return terms

    def train_parts(self, images, optim_wrapper) -> Dict[str, torch.Tensor]:
        log = {}
        if self.discriminator is not None:
            log.update(self.update(optim_wrapper, 'discriminator',
                                   lambda: self.loss_discriminator(images),
                                   freeze=('autoencoder',)))
            freeze = ('discriminator',)
        else:
            freeze = ()
        log.update(self.update(optim_wrapper, 'autoencoder',
                               lambda: self.loss_autoencoder(images), freeze=freeze))
        return log

    # -- fitting the editor (fit_stage 'after', run by NormalFitHook) ---------
    fit_stage = 'after'

    def fit_reset(self) -> None:
        self._latents = []

    @torch.no_grad()
    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        z = self.autoencoder.encoder(self.data_preprocessor.denormalize(inputs))
        self._latents.append(self.editor.flatten(z).float().cpu())  # (B*h*w, C)

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        """Fit the editor's k-means centres on the normal images' latents.

        Returns:
            the editor's fit statistics (``cluster_sizes``).
        """
        x = torch.cat(self._latents)
        del self._latents
        if x.shape[0] > self.max_fit_vectors:
            gen = torch.Generator().manual_seed(self.seed)
            x = x[torch.randperm(x.shape[0], generator=gen)[:self.max_fit_vectors]]
        # the editor takes maps; a (N, C) matrix is a (N, C, 1, 1) map
        return self.editor.fit([x[:, :, None, None].to(self.editor.centres.device)])

    # -- test -------------------------------------------------------------------
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> edited reconstruction (B, C, H, W)."""
        if not self.training and not bool(self.editor.fitted):
            warnings.warn('FeatureEditingAE: the latent editor is not fitted yet '
                          '(NormalFitHook fits it after training): '
                          'the reconstruction is not edited', stacklevel=3)
        return self.autoencoder(images)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        images = self.data_preprocessor.denormalize(inputs)
        return self.map_loss.map(self.reconstruct(images), images)  # (B, 1, H, W)
