"""Structural similarity (SSIM) with a Gaussian window.

Follows Wang et al., "Image quality assessment: from error visibility to
structural similarity" (IEEE TIP 2004) with population (co)variances: local
statistics are Gaussian-weighted means, ``C1 = (0.01 L)^2`` and
``C2 = (0.03 L)^2`` for the data range ``L``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..utils import float32_compute


def check_image_pair(pred: torch.Tensor, target: torch.Tensor, min_size: int = 1) -> None:
    """Raise a ValueError unless ``pred`` and ``target`` are equal-shape image batches.

    Args:
        pred: predicted images, expected (B, C, H, W).
        target: reference images, expected of the same shape.
        min_size: smallest allowed height and width.
    """
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError('image losses expect pred and target of the same (B, C, H, W) shape, '
                         f'got {tuple(pred.shape)} and {tuple(target.shape)}')
    if min(pred.shape[-2:]) < min_size:
        raise ValueError(f'image losses: height and width must be >= {min_size}, '
                         f'got {tuple(pred.shape[-2:])}')


def gaussian_kernel1d(window: int, sigma: float, dtype=None, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps.

    Args:
        window: odd number of taps.
        sigma: standard deviation in pixels.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        (window,) tensor summing to 1.
    """
    if window < 1 or window % 2 != 1:
        raise ValueError(f'SSIM window must be a positive odd integer, got {window}')
    if not sigma > 0:
        raise ValueError(f'SSIM sigma must be > 0, got {sigma}')
    x = torch.arange(window, dtype=torch.float64) - (window - 1) / 2  # (window,)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def _symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad H and W by ``pad`` mirroring with the edge pixel repeated (d c b a | a b c d).

    This is ``scipy.ndimage``'s ``mode='reflect'``; torch's own 'reflect'
    leaves the edge pixel out, so it is built from flipped slices here.
    """
    top, bottom = x[..., :pad, :].flip(-2), x[..., x.shape[-2] - pad:, :].flip(-2)
    x = torch.cat([top, x, bottom], dim=-2)  # (B, C, H + 2 pad, W)
    left, right = x[..., :pad].flip(-1), x[..., x.shape[-1] - pad:].flip(-1)
    return torch.cat([left, x, right], dim=-1)  # (B, C, H + 2 pad, W + 2 pad)


def _gaussian_blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable depthwise blur, size-preserving with symmetric padding.

    Args:
        x: (B, C, H, W) images.
        taps: (K,) 1-D kernel, K odd.

    Returns:
        (B, C, H, W) blurred images.
    """
    c, k = x.shape[1], taps.numel()
    x = _symmetric_pad(x, k // 2)  # (B, C, H + K - 1, W + K - 1)
    kh = taps.view(1, 1, k, 1).expand(c, 1, k, 1)  # (C, 1, K, 1)
    kw = taps.view(1, 1, 1, k).expand(c, 1, 1, k)  # (C, 1, 1, K)
    return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)


@float32_compute
def ssim_map(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5,
             data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel, per-channel SSIM at the input size.

    Local means, variances and the covariance are Gaussian-weighted
    (``window`` taps, std ``sigma``), channel by channel. Near the border the
    images are extended by mirroring with the edge pixel repeated
    (``d c b a | a b c d``, ``scipy.ndimage`` mode 'reflect'), so every pixel
    has a value; the values more than ``window // 2`` pixels from the border
    do not depend on the extension.

    Args:
        pred: (B, C, H, W) images.
        target: (B, C, H, W) images.
        window: odd number of Gaussian taps per axis.
        sigma: Gaussian standard deviation in pixels.
        data_range: dynamic range ``L`` of the images (1 for [0, 1]).

    Returns:
        (B, C, H, W) SSIM values, 1 where the images agree locally.
    """
    check_image_pair(pred, target, min_size=window // 2 + 1)
    taps = gaussian_kernel1d(window, sigma, dtype=pred.dtype, device=pred.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    b = pred.shape[0]
    # blur the five statistics in one call: (5B, C, H, W)
    stats = _gaussian_blur(torch.cat([pred, target, pred * pred, target * target,
                                      pred * target]), taps)
    mu_p, mu_t, e_pp, e_tt, e_pt = stats.split(b)  # each (B, C, H, W)
    var_p = e_pp - mu_p * mu_p
    var_t = e_tt - mu_t * mu_t
    cov = e_pt - mu_p * mu_t
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p * mu_p + mu_t * mu_t + c1) * (var_p + var_t + c2)
    return num / den


@MODELS.register_module()
class SSIMLoss(nn.Module):
    """``1 - SSIM`` loss with a Gaussian window.

    The scalar is ``1 - mean SSIM`` over the pixels at least ``window // 2``
    from the border (where the window lies inside the image), averaged over
    channels and the batch; on gray images this equals ``1 -
    skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``. The map keeps
    the input size: ``1 - SSIM`` with the border handled by mirror padding
    (see :func:`ssim_map`), averaged over channels.

    Args:
        window: odd number of Gaussian taps per axis (11).
        sigma: Gaussian standard deviation in pixels (1.5).
        data_range: dynamic range of the images (1 for [0, 1]).
        loss_weight: factor applied to the scalar loss (not to the map).
    """

    def __init__(self, window: int = 11, sigma: float = 1.5, data_range: float = 1.0,
                 loss_weight: float = 1.0):
        super().__init__()
        gaussian_kernel1d(window, sigma)  # validates the arguments
        if not data_range > 0 or not math.isfinite(data_range):
            raise ValueError(f'SSIMLoss: data_range must be a positive number, got {data_range}')
        self.window = int(window)
        self.sigma = float(sigma)
        self.data_range = float(data_range)
        self.loss_weight = float(loss_weight)

    @float32_compute
    def map(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pixel dissimilarity.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            (B, 1, H, W) channel mean of ``1 - SSIM``.
        """
        ssim = ssim_map(pred, target, self.window, self.sigma, self.data_range)
        return 1 - ssim.mean(1, keepdim=True)

    @float32_compute
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred: (B, C, H, W) images, H and W >= ``window``.
            target: (B, C, H, W) images.

        Returns:
            ``loss_weight * (1 - mean SSIM)`` over the border-free region.
        """
        check_image_pair(pred, target, min_size=self.window)
        ssim = ssim_map(pred, target, self.window, self.sigma, self.data_range)
        p = self.window // 2
        valid = ssim[..., p:ssim.shape[-2] - p, p:ssim.shape[-1] - p]  # (B, C, H-2p, W-2p)
        return self.loss_weight * (1 - valid.mean())
