"""SimpleNet's truncated L1 loss."""
import torch
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class TruncatedL1Loss(nn.Module):
    """``mean(max(0, th_pos - D(normal))) + mean(max(0, th_neg + D(anomalous)))``
    (Liu et al. 2023): normal scores are pushed above ``th_pos``, anomalous
    ones below ``-th_neg``, and no further.

    Args:
        th_pos: margin of the normal scores (0.5 in the paper).
        th_neg: margin of the anomalous scores (0.5 in the paper).
        loss_weight: factor on the loss.
    """

    def __init__(self, th_pos: float = 0.5, th_neg: float = 0.5, loss_weight: float = 1.0):
        super().__init__()
        self.th_pos, self.th_neg, self.loss_weight = float(th_pos), float(th_neg), \
            float(loss_weight)

    def forward(self, normal: torch.Tensor, anomalous: torch.Tensor) -> torch.Tensor:
        """Args:
            normal: discriminator scores of normal features, any shape.
            anomalous: scores of the anomalous features, any shape.

        Returns:
            scalar loss.
        """
        pos = torch.clamp(self.th_pos - normal.float(), min=0).mean()
        neg = torch.clamp(self.th_neg + anomalous.float(), min=0).mean()
        return self.loss_weight * (pos + neg)
