"""Reconstruction-based detector: encoder -> decoder, residual map."""
from typing import Dict, Optional

import torch

from anomaly_plugin.registry import MODELS

from ..losses import CombinedLoss
from .base import BaseAnomalyDetector


def reconstruction_losses(loss_fn: torch.nn.Module, pred: torch.Tensor,
                          target: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Loss dict of a reconstruction for MMEngine's ``parse_losses``.

    Args:
        loss_fn: the training loss.
        pred: (B, C, H, W) reconstruction in [0, 1].
        target: (B, C, H, W) clean images in [0, 1].

    Returns:
        ``{'loss_rec': scalar}``, or for a :class:`CombinedLoss` its weighted
        terms (``{'loss_l2': .., 'loss_ssim': ..}``) without their sum:
        MMEngine adds up every key containing ``'loss'``, so the total
        optimised is the same and each term is logged.
    """
    if isinstance(loss_fn, CombinedLoss):
        return loss_fn.forward_terms(pred, target)
    return dict(loss_rec=loss_fn(pred, target))


@MODELS.register_module()
class ConvAutoEncoder(BaseAnomalyDetector):
    """Convolutional autoencoder trained to reconstruct normal images.

    The loss compares the reconstruction with the input in [0, 1] (the
    normalisation is undone first); the anomaly map is the loss's per-pixel
    form (``loss.map``), by default the channel-mean squared residual.

    Args:
        encoder: config of the encoder (image -> latent code);
            ``ConvEncoder`` by default.
        decoder: config of the decoder (latent code -> image in [0, 1]);
            ``ConvDecoder`` by default.
        loss: training loss, also the source of the anomaly map; ``L2Loss``
            by default. A ``CombinedLoss`` logs each term separately.
        score_map: loss whose ``map`` is the anomaly map; defaults to
            ``loss``.
    """

    def __init__(self,
                 encoder: Optional[dict] = None,
                 decoder: Optional[dict] = None,
                 loss: Optional[dict] = None,
                 score_map: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = MODELS.build(encoder or dict(type='ConvEncoder'))
        self.decoder = MODELS.build(decoder or dict(type='ConvDecoder'))
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.score_fn = MODELS.build(score_map) if score_map else self.loss_fn

    def reconstruct(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> (B, 3, H, W) reconstruction in [0, 1]."""
        return self.decoder(self.encoder(inputs))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        target = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        return reconstruction_losses(self.loss_fn, self.reconstruct(inputs), target)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        target = self.data_preprocessor.denormalize(inputs)
        return self.score_fn.map(self.reconstruct(inputs), target)  # (B, 1, H, W)
