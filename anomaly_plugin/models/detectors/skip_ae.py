"""Autoencoder with skip connections trained on stained images.

Collin and De Vleeschouwer, "Improved anomaly detection by training an
autoencoder with skip connections on images corrupted with Stain-shaped
noise" (ICPR 2020): skip connections keep the reconstruction sharp, and
because the network only ever sees stained inputs while it must return the
clean image, it cannot learn the identity; at test time a real defect is
treated like a stain and removed from the reconstruction.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from .autoencoder import reconstruction_losses
from .base import BaseAnomalyDetector


def _conv_bn_act(cin: int, cout: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Conv (padding ``kernel_size // 2``) + BatchNorm + LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


class SkipUNet(nn.Module):
    """U-Net-like image-to-image network.

    Encoder stage ``i`` is a stride-2 conv to ``channels[i]`` (resolution
    ``H / 2^(i+1)``). The decoder walks back up: at each scale the coarser
    features are upsampled (bilinear) to the encoder feature's size and
    merged with it, by concatenation followed by a conv (``skip='concat'``)
    or by a conv followed by addition (``skip='add'``, as in the authors'
    code). A last upsampling to the input size and two convs give the image
    through a sigmoid. There is no skip at the full input resolution.

    Args:
        in_channels: image channels (also the output channels).
        channels: encoder channels per stride-2 stage, fine to coarse.
        kernel_size: odd kernel size of every conv.
        skip: ``'concat'`` or ``'add'``.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128, 128),
                 kernel_size: int = 3, skip: str = 'concat'):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f'SkipAutoEncoder: channels must be a non-empty list of positive '
                             f'integers, got {channels}')
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f'SkipAutoEncoder: kernel_size must be odd, got {kernel_size}')
        if skip not in ('concat', 'add'):
            raise ValueError(f"SkipAutoEncoder: skip must be 'concat' or 'add', got {skip!r}")
        self.skip = skip
        k = kernel_size
        self.down = nn.ModuleList()
        cin = in_channels
        for c in channels:
            self.down.append(_conv_bn_act(cin, c, k, stride=2))
            cin = c
        # up[j] merges into encoder level i = len - 2 - j (coarse to fine)
        self.up = nn.ModuleList()
        for i in range(len(channels) - 2, -1, -1):
            coarse, fine = channels[i + 1], channels[i]
            cin = coarse + fine if skip == 'concat' else coarse
            self.up.append(_conv_bn_act(cin, fine, k))
        self.head = nn.Sequential(_conv_bn_act(channels[0], channels[0], k),
                                  nn.Conv2d(channels[0], in_channels, k, 1, k // 2),
                                  nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image in [0, 1] -> (B, C, H, W) reconstruction in [0, 1]."""
        feats: List[torch.Tensor] = []
        y = x
        for stage in self.down:
            y = stage(y)
            feats.append(y)  # (B, channels[i], ~H / 2^(i+1), ~W / 2^(i+1))
        y = feats[-1]
        for j, conv in enumerate(self.up):
            skip = feats[len(feats) - 2 - j]
            y = F.interpolate(y, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            if self.skip == 'concat':
                y = conv(torch.cat([y, skip], dim=1))
            else:
                y = conv(y) + skip
        y = F.interpolate(y, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return self.head(y)  # (B, C, H, W)


@MODELS.register_module()
class SkipAutoEncoder(BaseAnomalyDetector):
    """Skip-connected autoencoder trained to remove synthetic corruptions.

    Training: the clean images in [0, 1] (normalisation undone) are
    corrupted by ``corruption`` (``StainNoise`` by default), the network
    reconstructs them and the loss compares the reconstruction with the
    clean images. Test: no corruption; the anomaly map is ``score_map``'s
    (default: the loss's) per-pixel form between the reconstruction and the
    input. The network works on images in [0, 1], not on normalised ones.

    Args:
        in_channels: image channels.
        channels: encoder channels per stride-2 stage (see :class:`SkipUNet`).
        kernel_size: odd kernel size of the convs.
        skip: ``'concat'`` (U-Net) or ``'add'``.
        corruption: config of the training corruption, a module returning
            ``(corrupted, mask)``; None gives ``StainNoise()``, False
            disables it (then the skips make the identity easy to learn).
        loss: training loss; ``L2Loss`` by default (the paper's MSE).
        score_map: loss whose ``map`` is the anomaly map; defaults to ``loss``.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128, 128),
                 kernel_size: int = 3, skip: str = 'concat',
                 corruption: Union[dict, bool, None] = None,
                 loss: Optional[dict] = None, score_map: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.net = SkipUNet(in_channels, channels, kernel_size, skip)
        if corruption is None:
            corruption = dict(type='StainNoise')
        self.corruption = MODELS.build(corruption) if corruption else None
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.score_fn = MODELS.build(score_map) if score_map else self.loss_fn

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [0, 1] -> (B, C, H, W) reconstruction in [0, 1]."""
        return self.net(images)

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        clean = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W) in [0, 1]
        corrupted = self.corruption(clean)[0] if self.corruption is not None else clean
        return reconstruction_losses(self.loss_fn, self.reconstruct(corrupted), clean)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        images = self.data_preprocessor.denormalize(inputs)
        return self.score_fn.map(self.reconstruct(images), images)  # (B, 1, H, W)
