"""Reverse Distillation: a decoder student reconstructs a frozen teacher's
levels from a one-class bottleneck code."""
from typing import Dict, List, Optional, Tuple

import torch

from anomaly_plugin.registry import MODELS

from .base import BaseAnomalyDetector


@MODELS.register_module()
class ReverseDistillation(BaseAnomalyDetector):
    """Reverse Distillation (Deng and Li, CVPR 2022).

    The frozen teacher encodes the image into levels; the one-class
    bottleneck fuses them into one compact code; the student decoder
    reconstructs the teacher's levels from the code, coarsest first. Trained
    on normal images, the code keeps what is normal, so a defect's teacher
    features are not reconstructed. Loss and map: :class:`CosineDistanceLoss`
    (``1 - cos`` per level; map: the upsampled levels summed); image score:
    the post-processor's reduction (max) of the smoothed map.

    Args:
        teacher: config of a frozen :class:`FeatureExtractor` (``pool_size=1``).
        bottleneck: config of a :class:`OneClassBottleneck`; its
            ``in_channels`` default to the teacher's level channels.
        decoder: config of a :class:`ReverseDecoder`; its ``in_channels``
            default to the bottleneck's ``out_channels`` and its
            ``out_channels`` to the teacher's level channels.
        loss: config of the loss, which also gives the map;
            ``CosineDistanceLoss`` by default.
    """

    def __init__(self, teacher: dict, bottleneck: dict, decoder: Optional[dict] = None,
                 loss: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.teacher = MODELS.build(teacher)
        channels = self.teacher.level_channels()
        bottleneck = dict(bottleneck)
        bottleneck.setdefault('in_channels', channels)
        decoder = dict(decoder or dict(type='ReverseDecoder'))
        decoder.setdefault('in_channels', bottleneck['out_channels'])
        decoder.setdefault('out_channels', channels)
        self.bottleneck = MODELS.build(bottleneck)
        self.decoder = MODELS.build(decoder)
        self.loss_fn = MODELS.build(loss or dict(type='CosineDistanceLoss'))

    def distill(self, inputs: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """(B, 3, H, W) normalised -> (teacher levels, student levels), finest first."""
        teacher = self.teacher.levels(inputs)  # frozen, no grad
        student = self.decoder(self.bottleneck(teacher), [t.shape[-2:] for t in teacher])
        return teacher, student

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        return self.loss_fn(*self.distill(inputs))

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.loss_fn.map(*self.distill(inputs), inputs.shape[-2:])  # (B, 1, H, W)
