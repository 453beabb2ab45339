"""Strided convolutional encoders trained from scratch (image -> latent code or
multi-scale features)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .blocks import conv_norm_act


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
            layers += [conv_norm_act(cin, c, 4, 2), conv_norm_act(c, c, 3)]
            cin = c
        layers.append(nn.Conv2d(cin, latent_channels, 1))
        self.layers = nn.Sequential(*layers)
        self.out_channels = latent_channels
        self.downsample = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, latent, H / s, W / s)


@MODELS.register_module()
class MultiScaleConvEncoder(BaseModule):
    """Stages of :class:`ConvEncoder` without the final 1x1 projection.

    Stage ``i`` is a stride-2 block followed by a stride-1 block (conv,
    BatchNorm, LeakyReLU) with ``channels[i]`` outputs, at stride
    ``2 ** (i + 1)``.

    Args:
        in_channels: image channels.
        channels: output channels of each stage, fine to coarse.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='encoder.')``); None keeps the default.

    Attributes:
        out_channels: ``channels`` as a tuple.
        strides: stride of each stage's output.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128, 128),
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError('MultiScaleConvEncoder: channels must be a non-empty list of '
                             f'positive integers, got {channels}')
        stages, cin = [], in_channels
        for c in channels:
            stages.append(nn.Sequential(conv_norm_act(cin, c, 4, 2), conv_norm_act(c, c, 3)))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels
        self.strides = tuple(2 ** (i + 1) for i in range(len(channels)))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C, H, W) -> one (B, channels[i], H / 2^(i+1), W / 2^(i+1)) per stage."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return tuple(feats)
