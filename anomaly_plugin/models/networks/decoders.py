"""Transposed-convolution decoders (latent code(s) -> image in [0, 1])."""
import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .blocks import conv_norm_act


@MODELS.register_module()
class ConvDecoder(BaseModule):
    """Mirror of :class:`ConvEncoder`: each stage doubles the resolution; a
    sigmoid gives an image in [0, 1].

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
            layers += list(conv_norm_act(cin, c, 4, 2, transposed=True))
            cin = c
        layers += [nn.Conv2d(cin, out_channels, 3, 1, 1), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)  # (B, out_channels, H, W)


@MODELS.register_module()
class MultiScaleFusionDecoder(BaseModule):
    """Decode the coarsest latent and merge the finer ones on the way up.

    Starting from the coarsest latent (stride ``in_strides[-1]``), each step
    doubles the resolution with a transposed conv to ``channels[s]``; where
    a latent of the reached stride exists it is concatenated and fused by a
    3x3 conv. After ``log2(in_strides[-1])`` steps the map is at the input
    resolution and a 3x3 conv with a sigmoid gives the image in [0, 1].
    Odd sizes are handled by resizing (bilinear) to the latent's size, and
    to ``out_size`` at the end when given.

    Args:
        in_channels: channels of the latents, fine to coarse.
        in_strides: strides of the latents, fine to coarse, powers of 2.
        channels: output channels of each doubling step, coarse to fine;
            ``log2(in_strides[-1])`` values.
        out_channels: image channels.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='decoder.')``); None keeps the default.
    """

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int],
                 channels: Sequence[int] = (128, 64, 32, 16), out_channels: int = 3,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        in_channels = [int(c) for c in in_channels]
        strides = [int(s) for s in in_strides]
        channels = [int(c) for c in channels]
        if len(in_channels) != len(strides) or not strides:
            raise ValueError(f'MultiScaleFusionDecoder: {len(in_channels)} in_channels for '
                             f'{len(strides)} in_strides')
        if any(s < 2 or s & (s - 1) for s in strides) or strides != sorted(set(strides)):
            raise ValueError('MultiScaleFusionDecoder: in_strides must be increasing powers of '
                             f'2 (>= 2), got {strides}')
        num_steps = int(math.log2(strides[-1]))
        if len(channels) != num_steps:
            raise ValueError(f'MultiScaleFusionDecoder: channels needs {num_steps} values '
                             f'(log2 of the coarsest stride {strides[-1]}), got {channels}')
        self.in_strides = tuple(strides)
        # level of each latent in the coarse-to-fine walk: stride 2^(num_steps - step)
        self.fuse_at = {num_steps - int(math.log2(s)): j for j, s in enumerate(strides[:-1])}
        self.ups, self.fuses = nn.ModuleList(), nn.ModuleDict()
        cin = in_channels[-1]
        for step, c in enumerate(channels, start=1):
            self.ups.append(conv_norm_act(cin, c, 4, 2, transposed=True))
            if step in self.fuse_at:
                self.fuses[str(step)] = conv_norm_act(c + in_channels[self.fuse_at[step]], c)
            cin = c
        self.head = nn.Sequential(nn.Conv2d(cin, out_channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, latents: Sequence[torch.Tensor], out_size=None) -> torch.Tensor:
        """Args:
            latents: (B, in_channels[j], H / in_strides[j], W / in_strides[j]),
                fine to coarse.
            out_size: (H, W) of the output; by default the size reached.

        Returns:
            (B, out_channels, H, W) image in [0, 1].
        """
        if len(latents) != len(self.in_strides):
            raise ValueError(f'MultiScaleFusionDecoder: expected {len(self.in_strides)} '
                             f'latents, got {len(latents)}')
        x = latents[-1]
        for step, up in enumerate(self.ups, start=1):
            x = up(x)  # (B, channels[step - 1], 2h, 2w)
            if step in self.fuse_at:
                z = latents[self.fuse_at[step]]
                if x.shape[-2:] != z.shape[-2:]:
                    x = F.interpolate(x, size=z.shape[-2:], mode='bilinear', align_corners=False)
                x = self.fuses[str(step)](torch.cat([x, z], dim=1))
        if out_size is not None and tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, size=tuple(out_size), mode='bilinear', align_corners=False)
        return self.head(x)
