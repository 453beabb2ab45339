"""DFM: a PCA subspace of pooled frozen features."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from anomaly_plugin.registry import MODELS

from .fitted import FittedDetector


@MODELS.register_module()
class DFM(FittedDetector):
    """Deep Feature Modeling (Ahuja et al. 2019), for one class of images.

    A frozen backbone's map (B, C, h, w) is average-pooled over
    ``pool_size`` x ``pool_size`` windows (stride ``pool_size``) and each
    image's pooled map flattened into one vector; a PCA keeping
    ``n_components`` of the variance is fitted on the normal images' vectors
    in one pass (``FitLoop``, as PaDiM). Image score: ``'fre'``, the feature
    reconstruction error ``||x - PCA^-1(PCA(x))||^2``, or ``'nll'``, the
    negative log-likelihood under the Gaussian of the principal components.
    Map: the reconstruction error per pooled position (summed over
    channels), upsampled by the post-processor, whatever the score.

    Args:
        backbone: config of a :class:`FeatureExtractor` (one deep layer,
            ``pool_size=1``).
        pool_size: window (and stride) of the average pooling.
        pca: config of a :class:`FeaturePCA`.
        score_type: ``'fre'`` or ``'nll'``.
    """

    def __init__(self, backbone: dict, pool_size: int = 4, pca: Optional[dict] = None,
                 score_type: str = 'fre', **kwargs):
        super().__init__(backbone, **kwargs)
        if score_type not in ('fre', 'nll'):
            raise ValueError(f"score_type must be 'fre' or 'nll', got {score_type!r}")
        self.pool_size = int(pool_size)
        self.score_type = score_type
        self.pca = MODELS.build(pca or dict(type='FeaturePCA'))

    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> pooled embeddings (B, C, h', w')."""
        emb = self.backbone(inputs)
        if min(emb.shape[-2:]) < self.pool_size:
            raise ValueError(
                f'DFM: the backbone map is {emb.shape[-2]}x{emb.shape[-1]}, smaller than '
                f'pool_size={self.pool_size}: use larger inputs or a smaller pool_size')
        if self.pool_size > 1:
            emb = F.avg_pool2d(emb, self.pool_size)
        return emb

    def fit_reset(self) -> None:
        self.pca.reset()

    def fit_embeddings(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        self.pca.update(emb.flatten(1))

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        self.pca.finish()
        return {'pca_components': [float(self.pca.components.shape[1])]}

    def forward_maps(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        emb = self.extract(inputs).float()  # (B, C, h, w)
        x = emb.flatten(1)  # (B, C*h*w)
        y = self.pca.transform(x)  # (B, K), projected once for both scores
        residual = (x - self.pca.inverse_transform(y)).view_as(emb)
        amap = residual.pow(2).sum(1, keepdim=True)  # (B, 1, h, w)
        score = amap.flatten(1).sum(1) if self.score_type == 'fre' else self.pca.coords_nll(y)
        return amap, score

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(inputs)[0]
