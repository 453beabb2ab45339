"""DCGAN building blocks (Radford et al. 2016) shared by the generative detectors.

Images are in [0, 1] (the generators end in a sigmoid). A DCGAN stack halves
(or doubles) the resolution with 4x4 stride-2 convolutions until the shorter
side is 4 pixels; its last feature map is what feature matching compares.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .blocks import conv_norm_act

Size = Union[int, Sequence[int]]


def as_hw(image_size: Size) -> Tuple[int, int]:
    """``image_size`` (int = square, or (H, W)) as an (H, W) tuple of ints."""
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(v) for v in image_size)
    return h, w


def dcgan_plan(image_size: Size, who: str) -> Tuple[int, Tuple[int, int]]:
    """Number of stride-2 stages and the (h, w) of the smallest feature map.

    The stack halves until the shorter side is 4: both sides must be
    divisible by ``2 ** stages`` and the shorter one at least 8.

    Raises:
        ValueError: naming ``who`` and the size when the size does not fit.
    """
    h, w = as_hw(image_size)
    short = min(h, w)
    stages = int(math.log2(short // 4)) if short >= 8 else 0
    if short < 8 or 4 * 2 ** stages != short or h % 2 ** stages or w % 2 ** stages:
        raise ValueError(
            f'{who}: image_size {h}x{w} does not fit a DCGAN stack: the shorter side must '
            f'be 4 * 2^n (8, 16, 32, 64, 128, 256, ...) and the longer side divisible by '
            f'2^n; set img_size (and the model\'s image_size) accordingly')
    return stages, (h // 2 ** stages, w // 2 ** stages)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _widths(stages: int, base_channels: int, max_channels: int) -> list:
    """Channels after each stride-2 stage, fine to coarse: base * 2^i capped."""
    return [min(base_channels * 2 ** i, max_channels) for i in range(stages)]


@MODELS.register_module()
class DCGANEncoder(BaseModule):
    """Image -> vector, a DCGAN discriminator trunk with an ``out_dim`` head.

    Args:
        image_size: input (H, W) or side; see :func:`dcgan_plan`.
        in_channels: image channels.
        out_dim: size of the output vector (the latent size of an encoder).
        base_channels: channels after the first stage, doubled per stage.
        max_channels: cap of the channels.
        norm: normalisation after every stage but the first (DCGAN has none
            on the input layer): ``'batch'``, ``'layer'`` or ``'none'``.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the DCGAN initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='encoder.')``); None keeps the default.
    """

    def __init__(self, image_size: Size = 64, in_channels: int = 3, out_dim: int = 100,
                 base_channels: int = 32, max_channels: int = 256, norm: str = 'batch',
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        stages, (h0, w0) = dcgan_plan(image_size, type(self).__name__)
        widths = _widths(stages, base_channels, max_channels)
        layers, cin = [], in_channels
        for i, c in enumerate(widths):
            layers += list(conv_norm_act(cin, c, 4, 2, norm='none' if i == 0 else norm,
                                         bias=False))
            cin = c
        self.features = nn.Sequential(*layers)
        self.feat_channels = cin
        # one conv over the whole smallest map (h0, w0) -> (B, out_dim, 1, 1)
        self.head = nn.Conv2d(cin, out_dim, (h0, w0), 1, 0)
        self.out_dim = out_dim
        dcgan_init(self)

    def forward_features(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> output (B, out_dim) and last features (B, F, h0, w0)."""
        feats = self.features(x)
        return self.head(feats).flatten(1), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]  # (B, out_dim)


@MODELS.register_module()
class DCGANDiscriminator(DCGANEncoder):
    """DCGAN discriminator / WGAN critic: image -> (logit (B,), features).

    The features (B, F, h0, w0) of the last stage are the ``f(x)`` of
    feature matching (AnoGAN, GANomaly, Skip-GANomaly, f-AnoGAN). Args as
    :class:`DCGANEncoder` without ``out_dim`` (``init_cfg`` included); use
    ``norm='layer'`` or ``'none'`` for a WGAN-GP critic (the gradient penalty
    is per sample).
    """

    def __init__(self, image_size: Size = 64, in_channels: int = 3, base_channels: int = 32,
                 max_channels: int = 256, norm: str = 'batch',
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(image_size, in_channels, 1, base_channels, max_channels, norm,
                         init_cfg=init_cfg)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits, feats = self.forward_features(x)
        return logits[:, 0], feats  # (B,), (B, F, h0, w0)


@MODELS.register_module()
class DCGANGenerator(BaseModule):
    """Latent vector -> image in [0, 1], mirror of :class:`DCGANEncoder`.

    Args:
        image_size: output (H, W) or side.
        latent_dim: size of the input vector.
        out_channels: image channels.
        base_channels: channels before the output layer, doubled per stage
            towards the input (capped at ``max_channels``).
        max_channels: cap of the channels.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the DCGAN initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='generator.')``); None keeps the default.
    """

    def __init__(self, image_size: Size = 64, latent_dim: int = 100, out_channels: int = 3,
                 base_channels: int = 32, max_channels: int = 256,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        stages, (h0, w0) = dcgan_plan(image_size, type(self).__name__)
        widths = _widths(stages, base_channels, max_channels)[::-1]  # coarse to fine
        # the first block maps the (1, 1) latent to the smallest map (h0, w0)
        layers = list(conv_norm_act(latent_dim, widths[0], (h0, w0), 1, 0, transposed=True,
                                    act='relu'))
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += list(conv_norm_act(cin, cout, 4, 2, transposed=True, act='relu'))
        layers += [nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) or (B, latent_dim, 1, 1) -> (B, C, H, W) in [0, 1]."""
        return self.layers(z.reshape(z.shape[0], self.latent_dim, 1, 1))
