"""Base of the feature-embedding detectors: a frozen feature extractor and a
statistic of the normal images' embeddings fitted in one pass."""
from typing import Dict

import torch

from anomaly_plugin.registry import MODELS

from .base import BaseAnomalyDetector


class FittedDetector(BaseAnomalyDetector):
    """A frozen feature extractor plus a statistic fitted on its embeddings.

    There is no training loss: ``train_cfg=dict(type='FitLoop')`` runs one
    no-grad pass over the training data (``fit_stage='instead'``); each
    batch's embeddings go to :meth:`fit_embeddings`.

    Args:
        backbone: config of a :class:`FeatureExtractor`.
    """

    fit_stage = 'instead'

    def __init__(self, backbone: dict, **kwargs):
        super().__init__(**kwargs)
        self.backbone = MODELS.build(backbone)

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        raise RuntimeError(f'{type(self).__name__} is fitted, not trained with gradients: '
                           "use train_cfg=dict(type='FitLoop')")

    @torch.no_grad()
    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, D, h, w) embeddings."""
        return self.backbone(inputs)

    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        self.fit_embeddings(self.extract(inputs), indices)

    def fit_embeddings(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        """Accumulate a batch's embeddings (B, D, h, w) with their (B,) dataset
        indices."""
        raise NotImplementedError
