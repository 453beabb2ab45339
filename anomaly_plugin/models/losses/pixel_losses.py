"""Per-pixel reconstruction losses.

Every loss is called as ``loss(pred, target)`` on images in [0, 1] and
returns a scalar; ``loss.map(pred, target)`` returns the per-pixel form
(B, 1, H, W) used as an anomaly map.
"""
import torch
from torch import nn

from anomaly_plugin.registry import MODELS


class _PixelLoss(nn.Module):
    """Base of element-wise losses: map = channel mean of the error.

    Args:
        loss_weight: factor applied to the scalar loss (not to the map).
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def error(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def map(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pair -> (B, 1, H, W) per-pixel error."""
        return self.error(pred, target).mean(1, keepdim=True)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * self.error(pred, target).mean()


@MODELS.register_module()
class L2Loss(_PixelLoss):
    """Squared error."""

    def error(self, pred, target):
        return (pred - target).pow(2)


@MODELS.register_module()
class L1Loss(_PixelLoss):
    """Absolute error."""

    def error(self, pred, target):
        return (pred - target).abs()
