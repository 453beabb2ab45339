"""Encoder and Gaussian decoder of the variational autoencoder."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .blocks import conv_norm_act
from .dcgan import Size, as_hw


def _feature_size(image_size: Size, stages: int, who: str) -> Tuple[int, int]:
    h, w = as_hw(image_size)
    s = 2 ** stages
    if h % s or w % s:
        raise ValueError(f'{who}: image_size {h}x{w} must be divisible by 2^len(channels) '
                         f'= {s}')
    return h // s, w // s


@MODELS.register_module()
class VAEEncoder(BaseModule):
    """Image -> posterior mean and log-variance, plus the last feature map.

    Args:
        image_size: input (H, W) or side, divisible by ``2 ** len(channels)``.
        in_channels: image channels.
        channels: channels of each stride-2 stage (4x4 conv, BatchNorm,
            LeakyReLU 0.2).
        latent_dim: latent size (vector) or latent channels (spatial).
        latent: ``'vector'`` (flatten + linear: z is (B, latent_dim)) or
            ``'spatial'`` (1x1 conv: z is (B, latent_dim, h, w)).
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='encoder.')``); None keeps the default.
    """

    def __init__(self, image_size: Size = 64, in_channels: int = 3,
                 channels: Sequence[int] = (32, 64, 128, 256), latent_dim: int = 128,
                 latent: str = 'vector', init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if latent not in ('vector', 'spatial'):
            raise ValueError(f"VAEEncoder: latent must be 'vector' or 'spatial', got {latent!r}")
        h, w = _feature_size(image_size, len(channels), 'VAEEncoder')
        layers, cin = [], in_channels
        for c in channels:
            layers.append(conv_norm_act(cin, c, 4, 2))
            cin = c
        self.features = nn.Sequential(*layers)
        self.latent = latent
        if latent == 'vector':
            self.head = nn.Sequential(nn.Flatten(1), nn.Linear(cin * h * w, 2 * latent_dim))
        else:
            self.head = nn.Conv2d(cin, 2 * latent_dim, 1)

    def forward_head(self, feats: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Last feature map (B, F, h, w) -> mean and log-variance of z."""
        mu, logvar = self.head(feats).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> mu, logvar ((B, D) or (B, D, h, w)), feats (B, F, h, w)."""
        feats = self.features(x)
        mu, logvar = self.forward_head(feats)
        return mu, logvar, feats


@MODELS.register_module()
class VAEDecoder(BaseModule):
    """Latent -> Gaussian over the image: per-pixel mean in [0, 1] and log-variance.

    Args:
        image_size: output (H, W) or side.
        out_channels: image channels.
        channels: channels of each stride-2 transposed-conv stage, coarse to
            fine (mirror of the encoder's).
        latent_dim: latent size / channels, as the encoder's.
        latent: ``'vector'`` or ``'spatial'``, as the encoder's.
        variance: ``'pixel'`` (the decoder predicts a log-variance per pixel
            and channel), ``'shared'`` (one learned log-variance) or a number
            (a fixed variance; 0.5 * squared error up to constants).
        min_logvar: lower bound of the log-variance (keeps the likelihood
            finite on flat regions); the upper bound is ``-min_logvar / 4``.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='decoder.')``); None keeps the default.
    """

    def __init__(self, image_size: Size = 64, out_channels: int = 3,
                 channels: Sequence[int] = (256, 128, 64, 32), latent_dim: int = 128,
                 latent: str = 'vector', variance: Union[str, float] = 'pixel',
                 min_logvar: float = -9.0, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        h, w = _feature_size(image_size, len(channels), 'VAEDecoder')
        self.latent, self.fm = latent, (channels[0], h, w)
        if latent == 'vector':
            self.head = nn.Linear(latent_dim, channels[0] * h * w)
        elif latent == 'spatial':
            self.head = nn.Conv2d(latent_dim, channels[0], 1)
        else:
            raise ValueError(f"VAEDecoder: latent must be 'vector' or 'spatial', got {latent!r}")
        layers = [conv_norm_act(a, b, 4, 2, transposed=True)
                  for a, b in zip(channels[:-1], channels[1:])]
        layers.append(conv_norm_act(channels[-1], channels[-1], 4, 2, transposed=True))
        self.layers = nn.Sequential(*layers)
        self.mean = nn.Sequential(nn.Conv2d(channels[-1], out_channels, 3, 1, 1), nn.Sigmoid())
        self.variance = variance
        if variance == 'pixel':
            self.logvar = nn.Conv2d(channels[-1], out_channels, 3, 1, 1)
        elif variance == 'shared':
            self.logvar = nn.Parameter(torch.zeros(1))
        elif isinstance(variance, (int, float)) and variance > 0:
            self.register_buffer('fixed_logvar', torch.tensor(float(variance)).log())
        else:
            raise ValueError(f"VAEDecoder: variance must be 'pixel', 'shared' or a positive "
                             f'number, got {variance!r}')
        self.min_logvar = float(min_logvar)

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """z -> mean (B, C, H, W) in [0, 1], log-variance broadcastable to it."""
        y = self.head(z)
        if self.latent == 'vector':
            y = y.view(z.shape[0], *self.fm)
        y = self.layers(torch.relu(y))
        mean = self.mean(y)
        if self.variance == 'pixel':
            raw = self.logvar(y)
        elif self.variance == 'shared':
            raw = self.logvar.view(1, 1, 1, 1)
        else:
            return mean, self.fixed_logvar.view(1, 1, 1, 1)
        # soft clamp into [min_logvar, -min_logvar / 4]
        lo, hi = self.min_logvar, -self.min_logvar / 4
        return mean, lo + (hi - lo) * torch.sigmoid(raw)
