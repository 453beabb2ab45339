"""Generators of GANomaly (encoder-decoder-encoder) and Skip-GANomaly (U-Net)."""
from typing import List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .dcgan import Size, as_hw, dcgan_init


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


@MODELS.register_module()
class UNetGenerator(BaseModule):
    """Pix2pix-style U-Net (Skip-GANomaly's generator, Akcay et al. 2019).

    ``num_downs`` 4x4 stride-2 convs (LeakyReLU 0.2, BatchNorm but on the
    first and the innermost) down to the bottleneck, then 4x4 stride-2
    transposed convs (ReLU, BatchNorm) back up, each concatenated with the
    encoder feature of the same scale; a sigmoid gives the image in [0, 1].

    Args:
        image_size: (H, W) or side; both divisible by ``2 ** num_downs``.
        in_channels: image channels (also the output channels).
        base_channels: channels of the first stage, doubled per stage.
        max_channels: cap of the channels.
        num_downs: number of stride-2 stages (6 takes 64 px to 1 px).
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the DCGAN initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='generator.')``); None keeps the default.
    """

    def __init__(self, image_size: Size = 64, in_channels: int = 3, base_channels: int = 32,
                 max_channels: int = 256, num_downs: int = 6,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        h, w = as_hw(image_size)
        if num_downs < 1 or h % 2 ** num_downs or w % 2 ** num_downs:
            raise ValueError(f'UNetGenerator: image_size {h}x{w} must be divisible by '
                             f'2^num_downs = {2 ** num_downs}')
        widths = [min(base_channels * 2 ** i, max_channels) for i in range(num_downs)]
        self.downs = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(widths):
            norm = i not in (0, num_downs - 1)
            self.downs.append(nn.Sequential(
                nn.Conv2d(cin, c, 4, 2, 1, bias=not norm),
                nn.BatchNorm2d(c) if norm else nn.Identity(),
                nn.LeakyReLU(0.2, inplace=True)))
            cin = c
        # up[j] goes from scale num_downs - j to num_downs - j - 1
        self.ups = nn.ModuleList()
        for i in range(num_downs - 1, 0, -1):
            cin = widths[i] if i == num_downs - 1 else 2 * widths[i]
            self.ups.append(nn.Sequential(
                nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(widths[i - 1]), nn.ReLU(inplace=True)))
        cin = widths[0] if num_downs == 1 else 2 * widths[0]
        self.head = nn.Sequential(nn.ConvTranspose2d(cin, in_channels, 4, 2, 1), nn.Sigmoid())
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H, W) in [0, 1]."""
        skips = []
        y = x
        for down in self.downs:
            y = down(y)
            skips.append(y)
        skips.pop()  # the bottleneck itself
        for up in self.ups:
            y = torch.cat([up(y), skips.pop()], 1)
        return self.head(y)
