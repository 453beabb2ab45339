"""Transposed-convolution decoder mirroring :class:`ConvEncoder`."""
from typing import Sequence

import torch
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class ConvDecoder(nn.Module):
    """Each stage doubles the resolution; a sigmoid gives an image in [0, 1].

    Args:
        latent_channels: channels of the latent code.
        channels: output channels of each stride-2 stage (coarse to fine).
        out_channels: image channels.
    """

    def __init__(self, latent_channels: int = 32,
                 channels: Sequence[int] = (128, 128, 64, 32),
                 out_channels: int = 3):
        super().__init__()
        layers, cin = [], latent_channels
        for c in channels:
            layers += [nn.ConvTranspose2d(cin, c, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]
            cin = c
        layers += [nn.Conv2d(cin, out_channels, 3, 1, 1), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)  # (B, out_channels, H, W)
