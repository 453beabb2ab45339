"""GANomaly's generator (encoder-decoder-encoder); Skip-GANomaly's U-Net is in unet.py."""
from typing import List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class EncoderDecoderEncoder(BaseModule):
    """GANomaly's generator (Akcay et al. 2018): x -> z -> x_hat -> z_hat.

    Args:
        encoder: config of the first encoder (image -> latent vector);
            ``DCGANEncoder`` by default.
        decoder: config of the decoder (latent -> image); ``DCGANGenerator``.
        encoder2: config of the second encoder (reconstruction -> latent);
            a copy of ``encoder``'s config by default (separate weights).
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='generator.')``); None keeps the default.
    """

    def __init__(self, encoder: Optional[dict] = None, decoder: Optional[dict] = None,
                 encoder2: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        encoder = encoder or dict(type='DCGANEncoder')
        self.encoder = MODELS.build(encoder)
        self.decoder = MODELS.build(decoder or dict(type='DCGANGenerator'))
        self.encoder2 = MODELS.build(encoder2 or dict(encoder))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) in [0, 1] -> x_hat (B, C, H, W), z (B, D), z_hat (B, D)."""
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)
