"""Multi-scale gradient magnitude similarity (MSGMS).

The reconstruction loss and anomaly map of RIAD (Zavrtanik, Kristan and
Skocaj, "Reconstruction by inpainting for visual anomaly detection",
Pattern Recognition 2021), built on the gradient magnitude similarity of
Xue et al. (GMSD, IEEE TIP 2014).
"""
import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..utils import float32_compute
from .ssim import check_image_pair


def _prewitt_kernels(dtype, device) -> torch.Tensor:
    """(2, 1, 3, 3) Prewitt kernels scaled by 1/3: x-derivative, then y-derivative."""
    kx = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=dtype, device=device) / 3  # (3, 3)
    return torch.stack([kx, kx.t()]).unsqueeze(1)


@float32_compute
def gms_map(pred: torch.Tensor, target: torch.Tensor, c: float = 0.0026,
            eps: float = 1e-12) -> torch.Tensor:
    """Gradient magnitude similarity of single-channel images.

    Gradients are cross-correlations with the scaled Prewitt kernels, zero
    padding 1; the magnitude is ``sqrt(gx^2 + gy^2 + eps)`` so that its
    derivative stays finite where both gradients vanish.

    Args:
        pred: (B, 1, H, W) images.
        target: (B, 1, H, W) images.
        c: stabilising constant of the similarity.
        eps: added under the square root of the magnitude.

    Returns:
        (B, 1, H, W) ``(2 g1 g2 + c) / (g1^2 + g2^2 + c)``, 1 where equal.
    """
    kernels = _prewitt_kernels(pred.dtype, pred.device)
    b = pred.shape[0]
    grads = F.conv2d(torch.cat([pred, target]), kernels, padding=1)  # (2B, 2, H, W)
    mag = torch.sqrt(grads.pow(2).sum(1, keepdim=True) + eps)  # (2B, 1, H, W)
    g1, g2 = mag.split(b)  # each (B, 1, H, W)
    return (2 * g1 * g2 + c) / (g1 * g1 + g2 * g2 + c)


@MODELS.register_module()
class MSGMSLoss(nn.Module):
    """Multi-scale gradient magnitude similarity loss and map.

    Images are reduced to gray by the channel mean; scale 0 is the full
    resolution and each further scale is a 2x2 average pooling of the
    previous one (odd sizes are floored). The scalar is the mean over scales
    of ``mean(1 - GMS)``. The map averages the per-scale ``1 - GMS``, each
    upsampled bilinearly (``align_corners=False``) to the input size, and
    then smooths it with a ``mean_filter_size`` box filter (21 by default, as
    in RIAD's evaluation) whose border is handled by replicating the edge
    values, so the map keeps the input size.

    Args:
        num_scales: number of scales (4).
        c: stabilising constant of the similarity (0.0026).
        mean_filter_size: odd side of the box filter applied to the map;
            1 disables the smoothing.
        eps: added under the square root of the gradient magnitude.
        loss_weight: factor applied to the scalar loss (not to the map).
    """

    def __init__(self, num_scales: int = 4, c: float = 0.0026, mean_filter_size: int = 21,
                 eps: float = 1e-12, loss_weight: float = 1.0):
        super().__init__()
        if num_scales < 1:
            raise ValueError(f'MSGMSLoss: num_scales must be >= 1, got {num_scales}')
        if mean_filter_size < 1 or mean_filter_size % 2 != 1:
            raise ValueError('MSGMSLoss: mean_filter_size must be a positive odd integer, '
                             f'got {mean_filter_size}')
        if not c > 0 or eps < 0:
            raise ValueError(f'MSGMSLoss: need c > 0 and eps >= 0, got c={c}, eps={eps}')
        self.num_scales = int(num_scales)
        self.c = float(c)
        self.mean_filter_size = int(mean_filter_size)
        self.eps = float(eps)
        self.loss_weight = float(loss_weight)

    def _dissimilarities(self, pred: torch.Tensor, target: torch.Tensor) -> list:
        """``1 - GMS`` at every scale: list of (B, 1, H / 2^s, W / 2^s)."""
        check_image_pair(pred, target, min_size=2 ** (self.num_scales - 1))
        gray_p = pred.mean(1, keepdim=True)  # (B, 1, H, W)
        gray_t = target.mean(1, keepdim=True)
        out = []
        for s in range(self.num_scales):
            if s > 0:
                gray_p, gray_t = F.avg_pool2d(gray_p, 2), F.avg_pool2d(gray_t, 2)
            out.append(1 - gms_map(gray_p, gray_t, self.c, self.eps))
        return out

    @float32_compute
    def map(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pixel dissimilarity.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            (B, 1, H, W) smoothed, scale-averaged ``1 - GMS``.
        """
        size = pred.shape[-2:]
        maps = [F.interpolate(d, size=size, mode='bilinear', align_corners=False)
                if d.shape[-2:] != size else d
                for d in self._dissimilarities(pred, target)]
        out = torch.stack(maps).mean(0)  # (B, 1, H, W)
        k = self.mean_filter_size
        if k > 1:
            out = F.avg_pool2d(F.pad(out, [k // 2] * 4, mode='replicate'), k, stride=1)
        return out

    @float32_compute
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred: (B, C, H, W) images.
            target: (B, C, H, W) images.

        Returns:
            ``loss_weight`` times the scale mean of ``mean(1 - GMS)``.
        """
        terms = [d.mean() for d in self._dissimilarities(pred, target)]
        return self.loss_weight * torch.stack(terms).mean()
