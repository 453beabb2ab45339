"""SimpleNet's trainable parts: the feature adaptor and the patch discriminator."""
from typing import List, Optional, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class FeatureAdaptor(BaseModule):
    """A linear map of every feature vector (a 1x1 convolution), which moves the
    pretrained features towards the target domain (SimpleNet's adaptor).

    Args:
        in_channels: feature channels.
        out_channels: adapted channels; ``in_channels`` when None.
        bias: learn an offset too.
        init_cfg: MMEngine initialisation config(s); None keeps PyTorch's.

    Shapes: (B, C, h, w) -> (B, C', h, w).
    """

    def __init__(self, in_channels: int, out_channels: Optional[int] = None, bias: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.proj = nn.Conv2d(in_channels, out_channels or in_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


@MODELS.register_module()
class PatchDiscriminator(BaseModule):
    """An MLP applied to every feature vector (1x1 convolutions): ``num_layers
    - 1`` hidden layers of ``hidden_channels`` with BatchNorm and LeakyReLU
    (slope 0.2), then a linear layer to one logit per position (SimpleNet's
    discriminator; positive = normal).

    Args:
        in_channels: feature channels.
        hidden_channels: width of the hidden layers.
        num_layers: linear layers in all (>= 1).
        init_cfg: MMEngine initialisation config(s); None keeps PyTorch's.

    Shapes: (B, C, h, w) -> (B, 1, h, w).
    """

    def __init__(self, in_channels: int, hidden_channels: int = 256, num_layers: int = 2,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'PatchDiscriminator: num_layers must be >= 1, got {num_layers}')
        layers, cin = [], in_channels
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(cin, hidden_channels, 1), nn.BatchNorm2d(hidden_channels),
                       nn.LeakyReLU(0.2)]
            cin = hidden_channels
        layers.append(nn.Conv2d(cin, 1, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
