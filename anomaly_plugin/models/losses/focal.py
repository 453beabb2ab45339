"""Focal loss for per-pixel anomaly segmentation (DRAEM's discriminative loss)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS


@MODELS.register_module()
class FocalLoss(nn.Module):
    """Binary focal loss (Lin et al. 2017) on logits, averaged over pixels.

    ``FL = -alpha_t (1 - p_t)^gamma log p_t`` with ``p = sigmoid(logit)``,
    ``p_t = p`` where the target is 1 and ``1 - p`` where it is 0, and
    ``alpha_t = alpha`` / ``1 - alpha`` likewise (no weighting when
    ``alpha`` is None). DRAEM uses ``gamma = 2`` on a 2-class softmax, which
    is this loss on the difference of its two logits.

    Args:
        gamma: focusing exponent (0: cross-entropy).
        alpha: weight of the positive class in [0, 1], or None.
        loss_weight: factor on the loss.
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = None,
                 loss_weight: float = 1.0):
        super().__init__()
        if gamma < 0 or (alpha is not None and not 0 <= alpha <= 1):
            raise ValueError(f'FocalLoss: need gamma >= 0 and alpha in [0, 1] or None, got '
                             f'{gamma}, {alpha}')
        self.gamma, self.alpha, self.loss_weight = float(gamma), alpha, float(loss_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args:
            logits: (B, 1, H, W) or any shape.
            target: same number of elements, in {0, 1}.

        Returns:
            scalar loss.
        """
        logits = logits.float()
        target = target.reshape(logits.shape).float()
        log_pt = -F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        loss = -(1 - log_pt.exp()).pow(self.gamma) * log_pt  # (B, 1, H, W)
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return self.loss_weight * loss.mean()
