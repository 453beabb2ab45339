"""Small tensor helpers shared by the models."""
import functools
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


def float32_compute(fn):
    """Run ``fn`` in float32 with autocast off, whatever its caller runs in.

    For losses and maps whose arithmetic cancels in 16-bit floats (SSIM's
    ``E[x^2] - mu^2``, gradient magnitudes, spectra): floating-point tensor
    arguments are cast to float32 and autocast is disabled inside, so
    ``--amp`` gives the same values as float32 training. Gradients flow
    back through the casts.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in args if torch.is_tensor(a)), 'cpu')
        args = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a
                for a in args]
        with torch.autocast(device_type=device, enabled=False):
            return fn(*args, **kwargs)
    return wrapper
