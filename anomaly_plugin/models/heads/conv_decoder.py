"""Transposed-convolution decoder mirroring :class:`ConvEncoder`."""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class ConvDecoder(BaseModule):
    """Each stage doubles the resolution; a sigmoid gives an image in [0, 1].

    Args:
        latent_channels: channels of the latent code.
        channels: output channels of each stride-2 stage (coarse to fine).
        out_channels: image channels.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='decoder.')``); None keeps the default.
    """

    def __init__(self, latent_channels: int = 32,
                 channels: Sequence[int] = (128, 128, 64, 32),
                 out_channels: int = 3,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        layers, cin = [], latent_channels
        for c in channels:
            layers += [nn.ConvTranspose2d(cin, c, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]
            cin = c
        layers += [nn.Conv2d(cin, out_channels, 3, 1, 1), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)  # (B, out_channels, H, W)
