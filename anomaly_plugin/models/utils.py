"""Small tensor helpers shared by the models."""
import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``round(truncate * sigma)``.

    Returns:
        (2 * radius + 1,) float32 kernel summing to 1.
    """
    radius = max(1, int(math.floor(truncate * sigma + 0.5)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding.

    Args:
        x: (B, C, H, W) maps.
        sigma: standard deviation in pixels; ``<= 0`` returns ``x``.

    Returns:
        (B, C, H, W) blurred maps.
    """
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma).to(x)
    r = k.numel() // 2
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    # reflect padding needs pad < size; fall back to replicate on tiny maps
    mode = 'reflect' if r < min(h, w) else 'replicate'
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)
