"""CFLOW-AD: conditional normalizing flows on feature vectors, conditioned on
their position."""
import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..networks.flows import flow_nll
from ..utils import float32_compute, step_generator
from .base import BaseAnomalyDetector


@MODELS.register_module()
class CFlow(BaseAnomalyDetector):
    """CFLOW-AD (Gudovskiy et al., WACV 2022).

    Per level of the frozen backbone, a conditional flow
    (:class:`~anomaly_plugin.models.networks.FlowStack` of coupling blocks
    with fully connected, i.e. 1x1, sub-networks) maps each position's
    feature vector to a standard normal, conditioned on the position's 2-D
    sinusoidal encoding. Per vector, the log-likelihood per dimension is
    ``log p / C = (-0.5 ||z||^2 - C/2 log(2 pi) + log|det J|) / C``.

    Training: each step draws ``num_fibers`` random positions per level from
    the batch's maps ("fibers", the paper's sampling) and minimises
    ``-log sigmoid(log p / C)`` averaged over them (the reference
    implementation's form of the likelihood objective), summed over levels;
    one optimiser step per batch (the reference code steps once per fiber
    mini-batch: the project's choice keeps one MMEngine step per batch).

    Map: per level ``exp(log p / C)`` upsampled bilinearly to the input,
    summed over levels, negated. The paper subtracts every level's
    log-likelihoods from the maximum over the test set and scores
    ``max - P``: for every map the same constant, so the ranking of pixels
    and images is the same, and this map does not depend on which images
    share a batch.

    Args:
        backbone: config of a frozen :class:`FeatureExtractor` (its
            ``levels``; ``pool_size=1``).
        flow: keyword arguments of every level's ``FlowStack`` (channels and
            condition channels are filled in).
        condition_channels: channels of the positional encoding.
        num_fibers: positions drawn per level and step (from a generator
            seeded by the saved step count: resumed training draws the same).
    """

    def __init__(self, backbone: dict, flow: Optional[dict] = None,
                 condition_channels: int = 128, num_fibers: int = 2048, **kwargs):
        super().__init__(**kwargs)
        self.backbone = MODELS.build(backbone)
        self.position = MODELS.build(dict(type='PositionalEncoding2D',
                                          channels=condition_channels))
        self.num_fibers = int(num_fibers)
        self.register_buffer('train_steps', torch.zeros((), dtype=torch.long))
        flow = dict(flow or {})
        flow.setdefault('kernel_sizes', (1, ))
        self.flows = nn.ModuleList(
            MODELS.build(dict(type='FlowStack', channels=c, cond_channels=condition_channels,
                              **flow))
            for c in self.backbone.level_channels())

    def _vectors(self, feat: torch.Tensor):
        """(B, C, h, w) -> features (B*h*w, C, 1, 1) and conditions (B*h*w, D, 1, 1)."""
        b, c, h, w = feat.shape
        cond = self.position(h, w, device=feat.device)  # (D, h, w)
        e = feat.permute(0, 2, 3, 1).reshape(-1, c)  # (B*h*w, C)
        p = cond.permute(1, 2, 0).reshape(1, h * w, -1).expand(b, -1, -1).reshape(b * h * w, -1)
        return e[:, :, None, None], p[:, :, None, None]

    @staticmethod
    @float32_compute
    def log_prob_per_dim(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
        """(N, C, 1, 1) flow outputs and (N,) log-determinants -> (N,) ``log p / C``."""
        c = z.shape[1]
        return -(flow_nll(z, log_det) + 0.5 * c * math.log(2 * math.pi)) / c

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        total = 0.0
        gen = step_generator(self.train_steps)
        for feat, flow in zip(self.backbone.levels(inputs), self.flows):
            e, p = self._vectors(feat)
            if e.shape[0] > self.num_fibers:
                idx = torch.randperm(e.shape[0], generator=gen)[:self.num_fibers].to(e.device)
                e, p = e[idx], p[idx]
            z, log_det = flow(e, p)
            total = total - F.logsigmoid(self.log_prob_per_dim(z, log_det)).mean()
        return {'loss_nll': total}

    def level_log_probs(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        """(B, 3, H, W) -> per level (B, 1, h, w) log-likelihood per dimension."""
        out = []
        for feat, flow in zip(self.backbone.levels(inputs), self.flows):
            b, _, h, w = feat.shape
            z, log_det = flow(*self._vectors(feat))
            out.append(self.log_prob_per_dim(z, log_det).view(b, 1, h, w))
        return out

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        size = inputs.shape[-2:]
        prob = sum(F.interpolate(lp.exp(), size=size, mode='bilinear', align_corners=False)
                   for lp in self.level_log_probs(inputs))
        return -prob  # (B, 1, H, W)
