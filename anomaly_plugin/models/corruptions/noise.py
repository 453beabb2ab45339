"""Synthetic corruptions applied to training batches of denoising autoencoders.

Each module maps a batch of clean images in [0, 1] to a corrupted copy and
the mask of what it changed; the autoencoder is trained to return the clean
images. Random numbers come from torch's global generator, so MMEngine's
``randomness.seed`` makes training reproducible.
"""
import math
from typing import Sequence, Tuple

import torch
from torch import nn

from anomaly_plugin.registry import MODELS


def _check_images(images: torch.Tensor, owner: str) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f'{owner} expects a float (B, C, H, W) batch in [0, 1], got '
                         f'{images.dtype} of shape {tuple(images.shape)}')


def _check_range(name: str, pair: Sequence[float], low: float, high: float,
                 owner: str) -> Tuple[float, float]:
    lo, hi = (float(v) for v in pair)
    if not low <= lo <= hi <= high:
        raise ValueError(f'{owner}: {name} must be (min, max) with {low} <= min <= max '
                         f'<= {high}, got {tuple(pair)}')
    return lo, hi


def _uniform(lo: float, hi: float, shape, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, device=device)


@MODELS.register_module()
class StainNoise(nn.Module):
    """Irregular elliptical stains, after Collin and De Vleeschouwer (ICPR 2020).

    Every image gets ``n`` stains, ``n`` uniform in ``num_stains`` (with
    probability ``prob``; otherwise none). A stain is an ellipse with random
    semi-axes (each a fraction ``size_range`` of ``min(H, W)``, so the
    eccentricity is random), random orientation and a centre that keeps the
    ellipse inside the image. Its border is made irregular by scaling the
    ellipse's radius with ``1 + sum_k (a_k cos k phi + b_k sin k phi)``, phi
    the polar angle, ``k = 1..harmonics`` and ``a_k, b_k`` uniform in
    ``+-irregularity / k`` (a smooth random contour, where the reference
    draws a cubic spline through jittered points of the ellipse). The
    opacity falls linearly from 1 to 0 over the last ``edge`` of the
    normalised radius (a soft rim) and is exactly 0 outside. Inside, the
    pixels are replaced by a flat colour plus Gaussian noise of std
    ``noise_std``, clipped to [0, 1].

    Colours (``color_mode``): ``'gray'`` one level uniform in
    ``color_range`` for all channels (the reference's choice, 10..220 of
    255); ``'rgb'`` one level per channel; ``'image'`` one level uniform
    between the image's own minimum and maximum.

    Args:
        num_stains: (min, max) stains per image, inclusive; the reference
            draws one.
        size_range: (min, max) semi-axis as a fraction of ``min(H, W)``
            (the reference: 1% to 12%).
        irregularity: contour perturbation amplitude, relative to the radius.
        harmonics: number of Fourier terms of the contour.
        edge: width of the soft rim as a fraction of the radius, in [0, 1];
            0 gives a hard edge.
        color_mode: ``'gray'``, ``'rgb'`` or ``'image'``.
        color_range: (min, max) levels in [0, 1] for ``'gray'`` and ``'rgb'``.
        noise_std: std of the Gaussian texture inside the stains.
        prob: probability that an image is stained at all.
    """

    COLOR_MODES = ('gray', 'rgb', 'image')

    def __init__(self, num_stains: Sequence[int] = (1, 3),
                 size_range: Sequence[float] = (0.01, 0.12),
                 irregularity: float = 0.1, harmonics: int = 5, edge: float = 0.3,
                 color_mode: str = 'gray',
                 color_range: Sequence[float] = (10 / 255, 220 / 255),
                 noise_std: float = 0.014, prob: float = 1.0):
        super().__init__()
        lo, hi = (int(v) for v in num_stains)
        if not 0 <= lo <= hi or hi < 1:
            raise ValueError(f'StainNoise: num_stains must be (min, max) with 0 <= min <= max '
                             f'and max >= 1, got {tuple(num_stains)}')
        self.num_stains = (lo, hi)
        self.size_range = _check_range('size_range', size_range, 1e-6, 1.0, 'StainNoise')
        self.color_range = _check_range('color_range', color_range, 0.0, 1.0, 'StainNoise')
        if color_mode not in self.COLOR_MODES:
            raise ValueError(f'StainNoise: color_mode must be one of {self.COLOR_MODES}, '
                             f'got {color_mode!r}')
        if irregularity < 0 or harmonics < 0 or not 0 <= edge <= 1 or noise_std < 0:
            raise ValueError('StainNoise: need irregularity >= 0, harmonics >= 0, '
                             f'0 <= edge <= 1 and noise_std >= 0, got {irregularity}, '
                             f'{harmonics}, {edge}, {noise_std}')
        if not 0 <= prob <= 1:
            raise ValueError(f'StainNoise: prob must be in [0, 1], got {prob}')
        self.irregularity = float(irregularity)
        self.harmonics = int(harmonics)
        self.edge = float(edge)
        self.color_mode = color_mode
        self.noise_std = float(noise_std)
        self.prob = float(prob)

    def _opacity(self, h: int, w: int, b: int, device) -> torch.Tensor:
        """Opacity of one random stain per image: (B, 1, H, W) in [0, 1]."""
        side = min(h, w)
        axes = _uniform(*self.size_range, (b, 2), device) * side  # (B, 2) semi-axes, px
        a, b_ax = axes[:, 0, None, None], axes[:, 1, None, None]  # (B, 1, 1)
        # the perturbed contour reaches at most (1 + bound) times the ellipse
        bound = 2 * self.irregularity * sum(1 / k for k in range(1, self.harmonics + 1))
        margin = axes.max(1).values * (1 + bound)  # (B,)
        span_y = (h - 1 - 2 * margin).clamp(min=0)
        span_x = (w - 1 - 2 * margin).clamp(min=0)
        cy = (torch.minimum(margin, torch.full_like(margin, (h - 1) / 2))
              + span_y * torch.rand(b, device=device))[:, None, None]  # (B, 1, 1)
        cx = (torch.minimum(margin, torch.full_like(margin, (w - 1) / 2))
              + span_x * torch.rand(b, device=device))[:, None, None]
        theta = _uniform(0.0, math.pi, (b, 1, 1), device)
        ys = torch.arange(h, device=device, dtype=torch.float32)[None, :, None]  # (1, H, 1)
        xs = torch.arange(w, device=device, dtype=torch.float32)[None, None, :]  # (1, 1, W)
        dy, dx = ys - cy, xs - cx  # (B, H, 1), (B, 1, W)
        cos, sin = torch.cos(theta), torch.sin(theta)
        p = (dx * cos + dy * sin) / a  # (B, H, W) coordinates in the ellipse's frame
        q = (dy * cos - dx * sin) / b_ax
        radius = torch.sqrt(p * p + q * q)  # 1 on the ellipse
        contour = torch.ones_like(radius)
        if self.harmonics and self.irregularity:
            phi = torch.atan2(q, p)
            for k in range(1, self.harmonics + 1):
                amp = self.irregularity / k
                ck = _uniform(-amp, amp, (b, 2, 1, 1), device)  # (B, 2, 1, 1)
                contour = contour + ck[:, 0] * torch.cos(k * phi) + ck[:, 1] * torch.sin(k * phi)
            contour = contour.clamp(min=0.2)
        if self.edge > 0:
            alpha = ((contour - radius) / (self.edge * contour)).clamp(0, 1)
        else:
            alpha = (radius <= contour).float()
        return alpha[:, None]  # (B, 1, H, W)

    def _colors(self, images: torch.Tensor) -> torch.Tensor:
        """Stain level per image and channel: (B, C, 1, 1)."""
        b, c = images.shape[:2]
        device = images.device
        if self.color_mode == 'gray':
            return _uniform(*self.color_range, (b, 1, 1, 1), device).expand(b, c, 1, 1)
        if self.color_mode == 'rgb':
            return _uniform(*self.color_range, (b, c, 1, 1), device)
        flat = images.reshape(b, -1)
        lo, hi = flat.min(1).values, flat.max(1).values  # (B,)
        level = lo + (hi - lo) * torch.rand(b, device=device)
        return level.view(b, 1, 1, 1).expand(b, c, 1, 1)

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Stain a batch.

        Args:
            images: (B, C, H, W) clean images in [0, 1].

        Returns:
            the stained images (B, C, H, W) and the stain opacity
            (B, 1, H, W) in [0, 1]; pixels where it is 0 are unchanged.
        """
        _check_images(images, 'StainNoise')
        b, _, h, w = images.shape
        device = images.device
        lo, hi = self.num_stains
        count = torch.randint(lo, hi + 1, (b,), device=device)  # (B,)
        count = count * (torch.rand(b, device=device) < self.prob)
        out = images.clone()
        clear = torch.ones(b, 1, h, w, device=device, dtype=images.dtype)  # prod (1 - alpha)
        for k in range(hi):
            active = (count > k).to(images.dtype).view(b, 1, 1, 1)
            alpha = self._opacity(h, w, b, device).to(images.dtype) * active  # (B, 1, H, W)
            stain = self._colors(images) + self.noise_std * torch.randn_like(images)
            out = out * (1 - alpha) + stain.clamp(0, 1) * alpha
            clear = clear * (1 - alpha)
        return out, 1 - clear

    def extra_repr(self) -> str:
        return (f'num_stains={self.num_stains}, size_range={self.size_range}, '
                f'color_mode={self.color_mode!r}, prob={self.prob}')


@MODELS.register_module()
class PixelNoise(nn.Module):
    """Independent per-pixel noise: additive Gaussian or salt-and-pepper.

    ``'gaussian'``: ``x + std * N(0, 1)`` per pixel and channel, clipped to
    [0, 1]. ``'salt_pepper'``: a fraction ``amount`` of the pixels (all
    channels of a pixel together) set to 0 or 1 with equal probability.

    Args:
        mode: ``'gaussian'`` or ``'salt_pepper'``.
        std: standard deviation of the Gaussian noise.
        amount: expected fraction of salt-and-pepper pixels, in [0, 1].
    """

    MODES = ('gaussian', 'salt_pepper')

    def __init__(self, mode: str = 'gaussian', std: float = 0.1, amount: float = 0.05):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f'PixelNoise: mode must be one of {self.MODES}, got {mode!r}')
        if std < 0 or not 0 <= amount <= 1:
            raise ValueError(f'PixelNoise: need std >= 0 and 0 <= amount <= 1, '
                             f'got std={std}, amount={amount}')
        self.mode = mode
        self.std = float(std)
        self.amount = float(amount)

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Corrupt a batch.

        Args:
            images: (B, C, H, W) clean images in [0, 1].

        Returns:
            the noisy images (B, C, H, W) and the mask (B, 1, H, W) of the
            corrupted pixels (all ones for Gaussian noise).
        """
        _check_images(images, 'PixelNoise')
        b, _, h, w = images.shape
        if self.mode == 'gaussian':
            noisy = (images + self.std * torch.randn_like(images)).clamp(0, 1)
            return noisy, torch.ones(b, 1, h, w, device=images.device, dtype=images.dtype)
        draw = torch.rand(b, 1, h, w, device=images.device)  # one draw per pixel
        hit = draw < self.amount  # (B, 1, H, W)
        salt = (draw < self.amount / 2).to(images.dtype)  # half of the hits are white
        noisy = torch.where(hit, salt.expand_as(images), images)
        return noisy, hit.to(images.dtype)
