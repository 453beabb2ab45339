"""Encoder, optional neck and decoder as one trainable part."""
from typing import Optional

import torch
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class AutoEncoderNet(nn.Module):
    """``decoder(neck(encoder(x)))`` under one name, so that one optimizer of a
    multi-part detector (``optim_wrapper=dict(autoencoder=...)``) covers it.

    Args:
        encoder: encoder config (``ConvEncoder`` by default).
        decoder: decoder config (``ConvDecoder`` by default).
        neck: config of a module between them (a codebook, a latent editor),
            None for none. Detectors call the three parts themselves when the
            neck returns more than a latent map.
    """

    def __init__(self, encoder: Optional[dict] = None, decoder: Optional[dict] = None,
                 neck: Optional[dict] = None):
        super().__init__()
        self.encoder = MODELS.build(encoder or dict(type='ConvEncoder'))
        self.decoder = MODELS.build(decoder or dict(type='ConvDecoder'))
        self.neck = MODELS.build(neck) if neck else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C', H, W)."""
        return self.decoder(self.neck(self.encoder(x)))
