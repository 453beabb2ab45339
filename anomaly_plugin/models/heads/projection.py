"""An MLP projection head on pooled features (CutPaste's)."""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class ProjectionHead(BaseModule):
    """Global average pooling, then ``Linear -> BatchNorm -> ReLU`` for each
    hidden width and a final ``Linear`` to ``out_channels``.

    Args:
        in_channels: channels of the feature map.
        hidden_channels: widths of the hidden layers (may be empty).
        out_channels: embedding size.
        init_cfg: MMEngine initialisation config(s); None keeps PyTorch's.

    Shapes: (B, C, h, w) or (B, C) -> (B, out_channels).
    """

    def __init__(self, in_channels: int, hidden_channels: Sequence[int] = (512, ),
                 out_channels: int = 128, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        layers, cin = [], in_channels
        for c in hidden_channels:
            layers += [nn.Linear(cin, c), nn.BatchNorm1d(c), nn.ReLU(inplace=True)]
            cin = c
        layers.append(nn.Linear(cin, out_channels))
        self.mlp = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.mean((2, 3))  # (B, C)
        return self.mlp(x)
