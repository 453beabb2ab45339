"""Encoder, optional neck and decoder as one trainable part."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class AutoEncoderNet(BaseModule):
    """``decoder(neck(encoder(x)))`` under one name, so that one optimizer of a
    multi-part detector (``optim_wrapper=dict(autoencoder=...)``) covers it.

    Args:
        encoder: encoder config (``ConvEncoder`` by default).
        decoder: decoder config (``ConvDecoder`` by default).
        neck: config of a module between them (a codebook, a latent editor),
            None for none. Detectors call the three parts themselves when the
            neck returns more than a latent map.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='autoencoder.')``); None keeps the default.
    """

    def __init__(self, encoder: Optional[dict] = None, decoder: Optional[dict] = None,
                 neck: Optional[dict] = None, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder or dict(type='ConvEncoder'))
        self.decoder = MODELS.build(decoder or dict(type='ConvDecoder'))
        self.neck = MODELS.build(neck) if neck else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C', H, W).

        When the encoder has a ``downsample`` factor (``ConvEncoder``) and the
        sides are not multiples of it, the input is padded (edge replication)
        and the output cropped back, so any size reconstructs.
        """
        h, w = x.shape[-2:]
        multiple = getattr(self.encoder, 'downsample', 1)
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        return self.decoder(self.neck(self.encoder(x)))[..., :h, :w]
