"""Patch SVDD's networks: the hierarchical patch encoder and the relative-position
classifier (Yi and Yoon, ACCV 2020)."""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1)


@MODELS.register_module()
class PatchSVDDEncoder(BaseModule):
    """Hierarchical patch encoder: a 32x32 patch -> one ``dim`` vector; a 64x64
    patch -> the vectors of its four 32x32 quadrants, fused.

    The small encoder is eight unpadded 3x3 convolutions (the first with
    stride 2; LeakyReLU 0.1; tanh at the end): 32 pixels in, one position
    out. Applied to a whole image it gives every 32x32 patch's vector at once,
    at stride 2 (a patch at top-left ``(2i, 2j)`` is position ``(i, j)``).
    The big encoder reads the four quadrant vectors (positions 16 apart on
    that map: a 2x2 convolution with dilation 16) then a 1x1 convolution
    and tanh, so it too is dense at stride 2.

    Args:
        dim: D, the embedding size.
        init_cfg: MMEngine initialisation config.
    """

    #: the two patch sizes and the stride of the dense maps
    small_size, big_size, stride = 32, 64, 2

    def __init__(self, dim: int = 64, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        chans = [3, 32, 64, 128, 128, 64, 32, 32]
        layers = []
        for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
            layers += [nn.Conv2d(cin, cout, 3, 2 if i == 0 else 1), _lrelu()]
        layers += [nn.Conv2d(chans[-1], dim, 3), nn.Tanh()]
        self.small = nn.Sequential(*layers)
        self.big = nn.Sequential(nn.Conv2d(dim, 128, 2, dilation=16), _lrelu(),
                                 nn.Conv2d(128, dim, 1), nn.Tanh())
        self.dim = int(dim)

    def embed_small(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D, (H - 32) / 2 + 1, (W - 32) / 2 + 1): every 32x32
        patch's vector (a 32x32 input gives (B, D, 1, 1))."""
        return self.small(x)

    def embed_big(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D, (H - 64) / 2 + 1, ...): every 64x64 patch's vector.

        A batch of single 64x64 patches (training) encodes only their four
        quadrants, not the 17x17 dense positions of which the big encoder
        reads four: the same vectors at about half the cost.
        """
        if x.shape[-2:] != (self.big_size, self.big_size):
            return self.big(self.small(x))
        n, c, half = x.shape[0], x.shape[1], self.small_size
        quads = x.reshape(n, c, 2, half, 2, half).permute(0, 2, 4, 1, 3, 5)  # (n, 2, 2, C, 32, 32)
        q = self.small(quads.reshape(4 * n, c, half, half))  # (4n, D, 1, 1)
        q = q.reshape(n, 2, 2, self.dim).permute(0, 3, 1, 2)  # (n, D, 2, 2)
        first = self.big[0]  # its dilation spans the dense map's quadrants; here they are adjacent
        h = F.conv2d(q, first.weight, first.bias)  # (n, 128, 1, 1)
        return self.big[1:](h)

    def forward(self, x: torch.Tensor, size: int = 64) -> torch.Tensor:
        """Dense embeddings of the ``size`` x ``size`` patches (32 or 64)."""
        if size == self.small_size:
            return self.embed_small(x)
        if size == self.big_size:
            return self.embed_big(x)
        raise ValueError(f'patch size must be 32 or 64, got {size}')


@MODELS.register_module()
class PatchPositionClassifier(BaseModule):
    """Patch SVDD's self-supervised task: from two patch embeddings, which of
    the 8 neighbouring positions (3x3 grid without its centre) the second
    patch was taken from, relative to the first.

    Reads the difference of the two embeddings: Linear(D, 128) - LeakyReLU -
    Linear(128, 128) - LeakyReLU - Linear(128, 8).

    Args:
        dim: D, the embedding size.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, dim: int = 64, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.net = nn.Sequential(nn.Linear(dim, 128), _lrelu(), nn.Linear(128, 128), _lrelu(),
                                 nn.Linear(128, 8))

    def forward(self, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """(N, D) or (N, D, 1, 1) embeddings -> (N, 8) logits."""
        return self.net((h1 - h2).flatten(1))
