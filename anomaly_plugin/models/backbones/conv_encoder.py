"""Strided convolutional encoder for autoencoders trained from scratch."""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


def conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3x3 conv (or 4x4 stride-2 conv) + BatchNorm + LeakyReLU(0.2)."""
    k, p = (4, 1) if stride == 2 else (3, 1)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, p, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


@MODELS.register_module()
class ConvEncoder(BaseModule):
    """Each stage halves the resolution; a 1x1 conv makes the latent code.

    Args:
        in_channels: image channels.
        channels: output channels of each stride-2 stage.
        latent_channels: channels of the latent code (the bottleneck).
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='encoder.')``); None keeps the default.

    Output: (B, latent_channels, H / 2**len(channels), W / 2**len(channels)).
    """

    def __init__(self, in_channels: int = 3,
                 channels: Sequence[int] = (32, 64, 128, 128),
                 latent_channels: int = 32,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        layers, cin = [], in_channels
        for c in channels:
            layers += [conv_block(cin, c, 2), conv_block(c, c, 1)]
            cin = c
        layers.append(nn.Conv2d(cin, latent_channels, 1))
        self.layers = nn.Sequential(*layers)
        self.out_channels = latent_channels
        self.downsample = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, latent, H / s, W / s)
