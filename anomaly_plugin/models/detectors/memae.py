"""Memory-augmented autoencoder (MemAE)."""
import copy
from typing import Dict, Optional

import torch

from anomaly_plugin.registry import MODELS

from .autoencoder import ConvAutoEncoder, reconstruction_losses


@MODELS.register_module()
class MemAE(ConvAutoEncoder):
    """Autoencoder whose latent code is read back from a learned memory.

    Gong et al., "Memorizing normality to detect anomaly: memory-augmented
    deep autoencoder for unsupervised anomaly detection" (ICCV 2019):
    encoder -> :class:`~anomaly_plugin.models.necks.MemoryModule` (sparse
    addressing of normal prototypes) -> decoder. The losses are
    ``loss_rec`` (the reconstruction loss against the input in [0, 1]) and
    ``loss_entropy`` (the neck's weighted entropy of the addressing
    weights); a ``CombinedLoss`` logs its weighted terms in place of
    ``loss_rec``. The anomaly map is the reconstruction loss's ``map``, as in
    :class:`ConvAutoEncoder`, with the memory read-out in the loop.

    Args:
        neck: config of the memory module (``MemoryModule`` by default);
            its ``in_channels`` must equal the encoder's latent channels and
            is taken from the encoder's ``out_channels`` when left out.
        **kwargs: ``encoder``, ``decoder``, ``loss``, ``map_loss`` and the
            base detector's arguments, see :class:`ConvAutoEncoder`.
    """

    def __init__(self, neck: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        latent = getattr(self.encoder, 'out_channels', None)
        neck = copy.deepcopy(dict(neck or dict(type='MemoryModule')))
        if latent is not None:
            neck.setdefault('in_channels', latent)
        self.neck = MODELS.build(neck)
        if latent is not None and getattr(self.neck, 'in_channels', latent) != latent:
            raise ValueError(f'MemAE: neck in_channels={self.neck.in_channels} does not match '
                             f'the encoder latent channels {latent}')

    def _forward_memory(self, inputs: torch.Tensor):
        """Reconstruction (B, 3, H, W) in [0, 1] and addressing weights (N, slots)."""
        z_hat, weights = self.neck(self.encoder(inputs))  # (B, C, h, w), (B*h*w, M)
        return self.decoder(z_hat), weights

    def reconstruct(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> (B, 3, H, W) reconstruction in [0, 1]."""
        return self._forward_memory(inputs)[0]

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        target = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        recon, weights = self._forward_memory(inputs)
        losses = reconstruction_losses(self.loss_fn, recon, target)
        losses['loss_entropy'] = self.neck.loss(weights)
        return losses
