"""FastFlow: 2-D normalizing flows on frozen feature maps."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..networks.flows import flow_nll, mean_log_likelihood
from ..utils import float32_compute
from .base import BaseAnomalyDetector


@MODELS.register_module()
class FastFlow(BaseAnomalyDetector):
    """FastFlow (Yu et al. 2021): per feature level, a flow of 2-D coupling
    blocks maps the frozen backbone's features to a standard normal.

    Each level's map is LayerNorm-ed over (C, h, w) with a learned affine (as
    the reference implementation does for CNN backbones), then transformed
    by its :class:`~anomaly_plugin.models.networks.FlowStack` (sub-networks
    alternating 3x3 and 1x1 convolutions). Loss: the flows' negative
    log-likelihood, ``0.5 * ||z||^2 - log|det J|`` summed over levels and
    positions, averaged over the batch. Map: per level ``-exp(-0.5 *
    mean_c z^2)`` (minus the per-position likelihood), upsampled bilinearly
    to the input, averaged over levels; image score: the post-processor's
    reduction (max) of the smoothed map.

    Args:
        backbone: config of a frozen :class:`FeatureExtractor`; its
            ``levels`` are the flows' inputs (``pool_size=1``).
        flow: keyword arguments of every level's ``FlowStack`` (the
            channels come from the backbone).
        image_size: (H, W) of the inputs, which fixes the LayerNorm shapes.
    """

    def __init__(self, backbone: dict, image_size: Sequence[int],
                 flow: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.backbone = MODELS.build(backbone)
        probe = torch.zeros(1, 3, *image_size)
        shapes = [f.shape[1:] for f in self.backbone.levels(probe)]  # (C, h, w) per level
        self.norms = nn.ModuleList(nn.LayerNorm(list(s)) for s in shapes)
        flow = dict(flow or {})
        self.flows = nn.ModuleList(
            MODELS.build(dict(type='FlowStack', channels=s[0], **flow)) for s in shapes)

    def encode(self, inputs: torch.Tensor):
        """(B, 3, H, W) normalised -> per level ``(z, log_det)``: z (B, C, h, w),
        log_det (B,)."""
        feats = self.backbone.levels(inputs)  # frozen, no grad
        return [flow(norm(f)) for f, norm, flow in zip(feats, self.norms, self.flows)]

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        return {'loss_nll': self._nll(self.encode(inputs))}

    @staticmethod
    @float32_compute
    def _nll_level(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
        return flow_nll(z, log_det).mean()

    def _nll(self, outs) -> torch.Tensor:
        return sum(self._nll_level(z, log_det) for z, log_det in outs)

    @staticmethod
    @float32_compute
    def _level_map(z: torch.Tensor, size) -> torch.Tensor:
        prob = torch.exp(mean_log_likelihood(z))  # (B, 1, h, w)
        return -F.interpolate(prob, size=size, mode='bilinear', align_corners=False)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        maps = [self._level_map(z, inputs.shape[-2:]) for z, _ in self.encode(inputs)]
        return torch.stack(maps).mean(0)  # (B, 1, H, W)
