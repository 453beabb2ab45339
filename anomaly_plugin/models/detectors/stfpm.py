"""STFPM: a student trained to match a frozen teacher's feature pyramid."""
from typing import Dict, Optional

import torch

from anomaly_plugin.registry import MODELS

from .base import BaseAnomalyDetector


@MODELS.register_module()
class STFPM(BaseAnomalyDetector):
    """Student-Teacher Feature Pyramid Matching (Wang et al. 2021).

    A student of the teacher's architecture learns, on normal images only,
    to reproduce the frozen teacher's features at every level; where the
    student was never taught (a defect) the two disagree. Loss and map:
    :class:`PyramidMatchingLoss` (normalised squared distances, product of
    the upsampled levels); image score: the post-processor's reduction
    (max) of the smoothed map.

    Args:
        teacher_student: config of a :class:`TeacherStudent`.
        loss: config of the loss, which also gives the map;
            ``PyramidMatchingLoss`` by default.
    """

    def __init__(self, teacher_student: dict, loss: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.teacher_student = MODELS.build(teacher_student)
        self.loss_fn = MODELS.build(loss or dict(type='PyramidMatchingLoss'))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        return self.loss_fn(*self.teacher_student(inputs))

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.loss_fn.map(*self.teacher_student(inputs), inputs.shape[-2:])  # (B, 1, H, W)
