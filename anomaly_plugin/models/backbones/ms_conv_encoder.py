"""Strided convolutional encoder returning the features of every stage."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .conv_encoder import conv_block


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
