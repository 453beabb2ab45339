"""Multi-scale feature-clustering fully convolutional autoencoder."""
import copy
from typing import Dict, List, Optional, Tuple

import torch

from anomaly_plugin.registry import MODELS

from .autoencoder import reconstruction_losses
from .base import BaseAnomalyDetector


@MODELS.register_module()
class FeatureClusteringAE(BaseAnomalyDetector):
    """Fully convolutional autoencoder with clustered multi-scale latents.

    After Yang et al., "Multi-scale feature-clustering-based fully
    convolutional autoencoder for fast accurate visual inspection of texture
    surface defects" (IEEE T-ASE 2019): latent features of normal texture
    are pulled towards a few learned cluster centres so that they stay
    compact, and features from several scales are fused to reconstruct the
    image. The formulation here is this module's own, as the paper's exact
    equations were not at hand:

    * encoder (``MultiScaleConvEncoder``): outputs at strides 2, 4, 8, ...;
    * neck (``FeatureClustering``): the outputs chosen by ``in_indices`` are
      projected by 1x1 convs to narrow latents; each scale has K learned
      centres and the clustering loss is the channel-mean squared distance
      of every latent vector to its nearest centre (or a softmin-weighted
      average of the distances) divided by the latents' mean square (so it
      cannot be lowered by shrinking the latents), averaged over positions
      and scales, times the neck's ``loss_weight``;
    * decoder (``MultiScaleFusionDecoder``): transposed convolutions from
      the coarsest latent back to the image, concatenating and fusing the
      finer latents at their strides; sigmoid output in [0, 1].

    Losses: ``loss_rec`` (the reconstruction loss against the input in
    [0, 1]; a ``CombinedLoss`` logs its terms instead) and ``loss_cluster``.
    The anomaly map is ``map_loss``'s (default: the loss's) per-pixel form.

    The neck's ``in_channels`` and the decoder's ``in_channels`` and
    ``in_strides`` are filled in from the encoder and the neck when the
    configs leave them out.

    Args:
        encoder: config of the multi-scale encoder.
        neck: config of the clustering neck.
        decoder: config of the fusion decoder.
        loss: reconstruction loss (``L2Loss`` by default).
        map_loss: loss whose ``map`` is the anomaly map; defaults to ``loss``.
        **kwargs: arguments of :class:`BaseAnomalyDetector`.
    """

    def __init__(self, encoder: Optional[dict] = None, neck: Optional[dict] = None,
                 decoder: Optional[dict] = None, loss: Optional[dict] = None,
                 map_loss: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = MODELS.build(encoder or dict(type='MultiScaleConvEncoder'))
        neck = copy.deepcopy(dict(neck or dict(type='FeatureClustering')))
        neck.setdefault('in_channels', list(self.encoder.out_channels))
        self.neck = MODELS.build(neck)
        decoder = copy.deepcopy(dict(decoder or dict(type='MultiScaleFusionDecoder')))
        decoder.setdefault('in_channels', list(self.neck.latent_channels))
        decoder.setdefault('in_strides', [self.encoder.strides[i] for i in self.neck.in_indices])
        self.decoder = MODELS.build(decoder)
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.map_loss = MODELS.build(map_loss) if map_loss else self.loss_fn

    def _forward_latents(self, inputs: torch.Tensor
                         ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Reconstruction (B, 3, H, W) in [0, 1] and the latents, fine to coarse."""
        latents = self.neck(self.encoder(inputs))
        return self.decoder(latents, out_size=inputs.shape[-2:]), latents

    def reconstruct(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> (B, 3, H, W) reconstruction in [0, 1]."""
        return self._forward_latents(inputs)[0]

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        target = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        recon, latents = self._forward_latents(inputs)
        losses = reconstruction_losses(self.loss_fn, recon, target)
        losses['loss_cluster'] = self.neck.loss(latents)
        return losses

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        target = self.data_preprocessor.denormalize(inputs)
        return self.map_loss.map(self.reconstruct(inputs), target)  # (B, 1, H, W)
