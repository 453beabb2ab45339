"""PaDiM: a Gaussian per patch position of the frozen features."""
from typing import Dict, List, Optional

import torch

from anomaly_plugin.registry import MODELS

from .fitted import FittedDetector


@MODELS.register_module()
class PaDiM(FittedDetector):
    """PaDiM (Defard et al. 2021): a Gaussian per patch position.

    Anomaly map: Mahalanobis distance of each patch embedding to its
    position's Gaussian; image score: max of the smoothed map.

    Args:
        backbone: config of a :class:`FeatureExtractor` (PaDiM uses no local
            aggregation, ``pool_size=1``, and a random channel subset).
        gaussian: config of a :class:`PatchGaussian`.
    """

    def __init__(self, backbone: dict, gaussian: Optional[dict] = None, **kwargs):
        super().__init__(backbone, **kwargs)
        self.gaussian = MODELS.build(gaussian or dict(type='PatchGaussian'))

    def fit_reset(self) -> None:
        self.gaussian.reset()

    def fit_embeddings(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        self.gaussian.update(emb)

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        self.gaussian.finish()
        return {}

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.gaussian.mahalanobis(self.extract(inputs))  # (B, 1, h, w)
