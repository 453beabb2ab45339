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
* after training, :meth:`fit_normal_statistics` (called by
  ``CalibrationHook``) fits k-means centres on the latent vectors of the
  normal training images (``LatentKMeansEditor``, saved in the checkpoint);
* test: every latent vector moves towards its nearest centre before
  decoding; the map is the ``score_map`` loss's per-pixel map between the
  input and this edited reconstruction.
"""
import warnings
from typing import Dict, Optional

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict

from anomaly_plugin.registry import MODELS

from .adversarial import AdversarialDetector
from .autoencoder import reconstruction_losses


@MODELS.register_module()
class FeatureEditingAE(AdversarialDetector):
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
        score_map: loss whose ``map`` is the anomaly map; defaults to ``loss``.
        max_fit_vectors: latent vectors k-means is fitted on at most (a
            seeded random subset when there are more).
        seed: seed of that subset.
    """

    def __init__(self, autoencoder: Optional[dict] = None,
                 discriminator: Optional[dict] = None, gan_loss: Optional[dict] = None,
                 adv_weight: float = 0.01, loss: Optional[dict] = None,
                 score_map: Optional[dict] = None, max_fit_vectors: int = 200_000,
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
        self.score_fn = MODELS.build(score_map) if score_map else self.loss_fn
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

    # -- fitting the editor -------------------------------------------------------
    @torch.no_grad()
    def fit_normal_statistics(self, dataloader) -> Dict[str, list]:
        """Fit the editor's k-means centres on the latents of defect-free images.

        Args:
            dataloader: batches as the ``data_preprocessor`` takes them (test
                pipeline, normal images only).

        Returns:
            the editor's fit statistics (``cluster_sizes``).
        """
        latents = []
        for inputs in self.eval_batches(dataloader):
            z = self.autoencoder.encoder(self.data_preprocessor.denormalize(inputs))
            latents.append(self.editor.flatten(z).float().cpu())  # (B*h*w, C)
        if not latents:
            raise ValueError('FeatureEditingAE.fit_normal_statistics: the data loader gave '
                             'no images')
        x = torch.cat(latents)
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
                          '(fit_normal_statistics, run by CalibrationHook after training): '
                          'the reconstruction is not edited', stacklevel=3)
        return self.autoencoder(images)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        images = self.data_preprocessor.denormalize(inputs)
        return self.score_fn.map(self.reconstruct(images), images)  # (B, 1, H, W)
