"""Weighted frequency domain (WFD) loss.

Nakanishi, Sato and Terada, "Anomaly detection by autoencoder based on
weighted frequency domain loss" (arXiv:2105.10214, 2021) compare the
reconstruction with its input in the 2-D Fourier domain with weights that
emphasise high spatial frequencies, which plain pixel losses under-weight
because natural images carry little high-frequency energy. The weight used
here is a radial power law; it follows that idea but is this module's own
definition, not a transcription of the paper's weight matrix.
"""
import math

import torch
from torch import nn

from anomaly_plugin.registry import MODELS

from ..utils import float32_compute
from .ssim import check_image_pair


def frequency_weights(height: int, width: int, alpha: float = 1.0, floor: float = 0.0,
                      dtype=None, device=None) -> torch.Tensor:
    """Radial weights of the unshifted ``fft2`` grid.

    ``rho = sqrt(u^2 + v^2) / (sqrt(2) / 2)`` with ``u, v`` in cycles per
    pixel (``torch.fft.fftfreq``), so ``rho`` is 0 at the mean (DC) and 1 at
    the corner where both axes reach the Nyquist frequency 1/2. The weight is
    ``floor + (1 - floor) * rho ** alpha``.

    Args:
        height: image height H.
        width: image width W.
        alpha: exponent of the radial growth (0 gives uniform weights).
        floor: weight of the DC component, in [0, 1].
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        (H, W) weights in [floor, 1].
    """
    u = torch.fft.fftfreq(height, dtype=torch.float64)  # (H,)
    v = torch.fft.fftfreq(width, dtype=torch.float64)  # (W,)
    rho = torch.sqrt(u[:, None] ** 2 + v[None, :] ** 2) / (math.sqrt(2) / 2)  # (H, W)
    w = floor + (1 - floor) * rho.pow(alpha)
    return w.to(dtype=dtype, device=device)


@MODELS.register_module()
class WFDLoss(nn.Module):
    """Frequency-weighted squared error of the residual spectrum.

    With ``R = fft2(pred - target)`` per image and channel (unnormalised
    DFT) and the weights ``w`` of :func:`frequency_weights`, the scalar is

        ``mean over (B, C, u, v) of w(u, v) * |R(u, v)|^2 / (H * W)``.

    By Parseval's theorem this is exactly the mean squared error when all
    weights are 1 (``alpha=0``); with ``alpha > 0`` an error at high spatial
    frequencies counts more than a smooth error of the same energy. With
    ``floor=0`` a uniform brightness offset (DC) costs nothing, so combine
    with a pixel loss or set ``floor > 0`` when that matters.

    The map is the residual filtered by the same weighting,
    ``ifft2(sqrt(w) * R)`` (real, since ``w`` is symmetric), squared and
    averaged over channels; averaged over pixels and channels it equals the
    scalar without ``loss_weight``. The filter is circular: the residual is
    treated as periodic at the border.

    Args:
        alpha: exponent of the radial weight growth (1).
        floor: weight at zero frequency, in [0, 1] (0).
        loss_weight: factor applied to the scalar loss (not to the map).
    """

    def __init__(self, alpha: float = 1.0, floor: float = 0.0, loss_weight: float = 1.0):
        super().__init__()
        if not alpha >= 0:
            raise ValueError(f'WFDLoss: alpha must be >= 0, got {alpha}')
        if not 0 <= floor <= 1:
            raise ValueError(f'WFDLoss: floor must be in [0, 1], got {floor}')
        self.alpha = float(alpha)
        self.floor = float(floor)
        self.loss_weight = float(loss_weight)

    def _spectrum(self, pred: torch.Tensor, target: torch.Tensor):
        """Residual spectrum (B, C, H, W) complex and weights (H, W)."""
        check_image_pair(pred, target)
        h, w = pred.shape[-2:]
        spec = torch.fft.fft2(pred - target)  # (B, C, H, W) complex
        weights = frequency_weights(h, w, self.alpha, self.floor, pred.dtype, pred.device)
        return spec, weights

    @float32_compute
    def map(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pixel weighted error.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            (B, 1, H, W) channel mean of the squared filtered residual.
        """
        spec, weights = self._spectrum(pred, target)
        filtered = torch.fft.ifft2(spec * weights.sqrt()).real  # (B, C, H, W)
        return filtered.pow(2).mean(1, keepdim=True)

    @float32_compute
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            ``loss_weight`` times the weighted spectral error above.
        """
        spec, weights = self._spectrum(pred, target)
        power = spec.real.pow(2) + spec.imag.pow(2)  # (B, C, H, W), |R|^2 without a sqrt
        h, w = pred.shape[-2:]
        return self.loss_weight * (weights * power).mean() / (h * w)
