"""Strided convolutional encoder returning the features of every stage."""
from typing import Sequence, Tuple

import torch
from torch import nn

from anomaly_plugin.registry import MODELS

from .conv_encoder import conv_block


@MODELS.register_module()
class MultiScaleConvEncoder(nn.Module):
    """Stages of :class:`ConvEncoder` without the final 1x1 projection.

    Stage ``i`` is a stride-2 block followed by a stride-1 block (conv,
    BatchNorm, LeakyReLU) with ``channels[i]`` outputs, at stride
    ``2 ** (i + 1)``.

    Args:
        in_channels: image channels.
        channels: output channels of each stage, fine to coarse.

    Attributes:
        out_channels: ``channels`` as a tuple.
        strides: stride of each stage's output.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128, 128)):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError('MultiScaleConvEncoder: channels must be a non-empty list of '
                             f'positive integers, got {channels}')
        stages, cin = [], in_channels
        for c in channels:
            stages.append(nn.Sequential(conv_block(cin, c, 2), conv_block(c, c, 1)))
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
