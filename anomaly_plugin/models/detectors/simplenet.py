"""SimpleNet: a discriminator between adapted normal features and the same
features with Gaussian noise."""
from typing import Dict, Optional

import torch

from anomaly_plugin.registry import MODELS

from ..utils import step_generator
from .base import BaseAnomalyDetector


@MODELS.register_module()
class SimpleNet(BaseAnomalyDetector):
    """SimpleNet (Liu et al., CVPR 2023).

    The frozen :class:`FeatureExtractor` gives locally aggregated features
    (PatchCore's); the :class:`FeatureAdaptor` maps them (linearly) to ``q``;
    anomalous features are ``q + e`` with ``e ~ N(0, noise_std^2)`` per
    element; the :class:`PatchDiscriminator` scores both (one batch, so its
    BatchNorm sees both) and is trained with the :class:`TruncatedL1Loss`
    (normal above ``th_pos``, anomalous below ``-th_neg``), the adaptor
    through the same loss. The noise is drawn from a generator seeded by the
    model's step counter (saved with the checkpoint): resume is exact. Map:
    minus the discriminator's score per position, upsampled and smoothed by
    the post-processor; image score: its maximum.

    Args:
        backbone: config of the frozen :class:`FeatureExtractor`.
        adaptor: config of the :class:`FeatureAdaptor` (channels from the
            backbone when ``in_channels`` is not given).
        discriminator: config of the :class:`PatchDiscriminator` (likewise).
        loss: :class:`TruncatedL1Loss` config.
        noise_std: std of the Gaussian noise, in adapted-feature units.
    """

    def __init__(self, backbone: dict, adaptor: Optional[dict] = None,
                 discriminator: Optional[dict] = None, loss: Optional[dict] = None,
                 noise_std: float = 0.015, **kwargs):
        super().__init__(**kwargs)
        self.backbone = MODELS.build(backbone)
        channels = self.backbone.out_channels()
        adaptor = dict(adaptor or dict(type='FeatureAdaptor'))
        adaptor.setdefault('in_channels', channels)
        self.adaptor = MODELS.build(adaptor)
        discriminator = dict(discriminator or dict(type='PatchDiscriminator'))
        discriminator.setdefault('in_channels', adaptor.get('out_channels') or channels)
        self.discriminator = MODELS.build(discriminator)
        self.loss_fn = MODELS.build(loss or dict(type='TruncatedL1Loss'))
        if noise_std <= 0:
            raise ValueError(f'SimpleNet: noise_std must be > 0, got {noise_std}')
        self.noise_std = float(noise_std)
        self.register_buffer('train_steps', torch.zeros((), dtype=torch.long))

    def adapted(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> adapted features (B, C, h, w)."""
        return self.adaptor(self.backbone(inputs))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        q = self.adapted(inputs)  # (B, C, h, w)
        gen = step_generator(self.train_steps)
        noise = torch.randn(q.shape, generator=gen).to(q) * self.noise_std
        scores = self.discriminator(torch.cat([q, q + noise]))  # (2B, 1, h, w)
        normal, anomalous = scores.split(q.shape[0])
        return {'loss_tl1': self.loss_fn(normal, anomalous)}

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return -self.discriminator(self.adapted(inputs)).float()  # (B, 1, h, w)
