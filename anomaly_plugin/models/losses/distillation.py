"""Teacher-student feature distances: STFPM's and Reverse Distillation's
losses, each with the anomaly map of the same distance."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..utils import float32_compute


def _upsample(m: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(m, size=tuple(size), mode='bilinear', align_corners=False)


@MODELS.register_module()
class PyramidMatchingLoss(nn.Module):
    """STFPM's loss (Wang et al. 2021): per level, the squared distance of the
    channel-wise L2-normalised teacher and student features, ``0.5 *
    ||t/|t| - s/|s| ||^2`` at each position, averaged over positions and
    images and summed over levels (the paper's Eq. 1-2).

    Map (:meth:`map`): each level's distance map upsampled bilinearly to the
    input, multiplied over the levels (the paper's aggregation).
    """

    @staticmethod
    @float32_compute
    def distance(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) teacher and student maps -> (B, 1, h, w) distances."""
        d = F.normalize(t, dim=1) - F.normalize(s, dim=1)
        return 0.5 * d.pow(2).sum(1, keepdim=True)

    def forward(self, teacher: Sequence[torch.Tensor],
                student: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Lists of (B, C_l, h_l, w_l), finest first -> ``{'loss_stfpm': ()}``."""
        return {'loss_stfpm': sum(self.distance(t, s).mean() for t, s in zip(teacher, student))}

    @torch.no_grad()
    def map(self, teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor],
            size) -> torch.Tensor:
        """(B, 1, H, W) product over levels of the upsampled distances."""
        out = None
        for t, s in zip(teacher, student):
            m = _upsample(self.distance(t, s), size)
            out = m if out is None else out * m
        return out


@MODELS.register_module()
class CosineDistanceLoss(nn.Module):
    """Reverse Distillation's loss (Deng and Li 2022): per level, ``1 - cos``
    between teacher and student features.

    ``reduction='location'`` (the paper's Eq. 2-3): the cosine over channels
    at each position, ``1 - cos`` averaged over positions and images;
    ``'flatten'``: the cosine between each image's whole flattened maps (the
    reference implementation's training loss). Summed over levels.

    Map (:meth:`map`): per-position ``1 - cos`` of each level, upsampled
    bilinearly to the input and summed over levels (the paper's).

    Args:
        reduction: ``'location'`` or ``'flatten'``.
    """

    def __init__(self, reduction: str = 'location'):
        super().__init__()
        if reduction not in ('location', 'flatten'):
            raise ValueError(f"reduction must be 'location' or 'flatten', got {reduction!r}")
        self.reduction = reduction

    @staticmethod
    @float32_compute
    def distance(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) teacher and student maps -> (B, 1, h, w) ``1 - cos``."""
        return 1 - F.cosine_similarity(t, s, dim=1).unsqueeze(1)

    @staticmethod
    @float32_compute
    def _flat(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (1 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()

    def forward(self, teacher: Sequence[torch.Tensor],
                student: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Lists of (B, C_l, h_l, w_l), finest first -> ``{'loss_cos': ()}``."""
        if self.reduction == 'flatten':
            loss = sum(self._flat(t, s) for t, s in zip(teacher, student))
        else:
            loss = sum(self.distance(t, s).mean() for t, s in zip(teacher, student))
        return {'loss_cos': loss}

    @torch.no_grad()
    def map(self, teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor],
            size) -> torch.Tensor:
        """(B, 1, H, W) sum over levels of the upsampled ``1 - cos`` maps."""
        return sum(_upsample(self.distance(t, s), size) for t, s in zip(teacher, student))
