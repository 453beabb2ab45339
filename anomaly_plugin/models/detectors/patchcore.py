"""PatchCore: a coreset memory bank of the frozen patch features."""
from typing import Dict, List, Optional

import torch
from mmengine import dist

from anomaly_plugin.engine.dist import gather_parts_to_main, patches_in_dataset_order
from anomaly_plugin.registry import MODELS

from .fitted import FittedDetector


@MODELS.register_module()
class PatchCore(FittedDetector):
    """PatchCore (Roth et al. 2022): coreset memory bank of patch features.

    Anomaly map: distance of each patch to its nearest bank entry. Image
    score: the largest patch distance, reweighted by the paper's
    neighbourhood softmax (``num_neighbors``).

    Args:
        backbone: config of a :class:`FeatureExtractor`.
        memory_bank: config of a :class:`KNNMemoryBank` (coreset ratio,
            selection mode, kNN chunk size, backend).
        num_neighbors: size of the support set of the reweighting.
        feature_dtype: how the training patches are kept until the coreset
            is selected: ``'float16'`` (half the memory: 5 million patches of
            128 channels take 1.3 GB) or ``'float32'``. The bank itself is
            float32 either way.
    """

    def __init__(self, backbone: dict, memory_bank: Optional[dict] = None,
                 num_neighbors: int = 9, feature_dtype: str = 'float16', **kwargs):
        super().__init__(backbone, **kwargs)
        self.memory_bank = MODELS.build(memory_bank or dict(type='KNNMemoryBank'))
        self.num_neighbors = int(num_neighbors)
        if feature_dtype not in ('float16', 'float32'):
            raise ValueError(f"feature_dtype must be 'float16' or 'float32', got {feature_dtype!r}")
        self.feature_dtype = getattr(torch, feature_dtype)
        self._parts: List[torch.Tensor] = []
        self._indices: List[torch.Tensor] = []

    def fit_reset(self) -> None:
        self._parts, self._indices = [], []

    def fit_embeddings(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        """Keep a batch's embeddings (B, D, h, w), on their device, as
        ``feature_dtype``, with their dataset indices."""
        self._parts.append(emb.to(self.feature_dtype))
        self._indices.append(indices.cpu())

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        """Put every rank's patches in dataset order, select the coreset.

        The patches are copied part by part into one (n*h*w, D) matrix on the
        device of the embeddings (each part is freed once copied, so the
        peak is about one copy of the features), where the selection runs.
        Distributed, only rank 0 gathers and selects (see
        :func:`~anomaly_plugin.engine.dist.gather_parts_to_main`); the bank is
        then broadcast to every rank.
        """
        parts, idx = gather_parts_to_main(self._parts, torch.cat(self._indices), self.feature_dtype)
        self.fit_reset()
        if parts:
            feats = patches_in_dataset_order(parts, idx)  # (n*h*w, D)
            self.memory_bank.fit(feats, progress=progress)  # rank 0 only
        if dist.get_world_size() > 1:
            self.memory_bank.broadcast_from(0)
        return {}

    def forward_maps(self, inputs: torch.Tensor):
        emb = self.extract(inputs)  # (B, D, h, w)
        b, d, h, w = emb.shape
        feats = emb.permute(0, 2, 3, 1).reshape(b, h * w, d)  # (B, P, D)
        dists, nn_idx = self.memory_bank.query(feats.reshape(-1, d), k=1)  # (B*P, 1)
        patch = dists[:, 0].reshape(b, h * w)
        scores = self.memory_bank.reweighted_scores(
            feats, patch, nn_idx[:, 0].reshape(b, h * w), self.num_neighbors)
        return patch.reshape(b, 1, h, w), scores

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(inputs)[0]
