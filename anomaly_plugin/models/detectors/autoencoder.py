"""Reconstruction-based detector: encoder -> decoder, residual map."""
from typing import Dict, Optional

import torch

from anomaly_plugin.registry import MODELS

from ..losses import reconstruction_losses
from .base import BaseAnomalyDetector


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
        map_loss: loss whose ``map`` is the anomaly map; defaults to
            ``loss``.
    """

    def __init__(self,
                 encoder: Optional[dict] = None,
                 decoder: Optional[dict] = None,
                 loss: Optional[dict] = None,
                 map_loss: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.encoder = MODELS.build(encoder or dict(type='ConvEncoder'))
        self.decoder = MODELS.build(decoder or dict(type='ConvDecoder'))
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.map_loss = MODELS.build(map_loss) if map_loss else self.loss_fn

    def reconstruct(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> (B, 3, H, W) reconstruction in [0, 1]."""
        return self.decoder(self.encoder(inputs))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        target = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        return reconstruction_losses(self.loss_fn, self.reconstruct(inputs), target)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        target = self.data_preprocessor.denormalize(inputs)
        return self.map_loss.map(self.reconstruct(inputs), target)  # (B, 1, H, W)
