"""Feature-embedding detectors fitted by one pass: PatchCore and PaDiM."""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine import dist

from anomaly_plugin.registry import MODELS

from .base import BaseAnomalyDetector


class FittedDetector(BaseAnomalyDetector):
    """A frozen feature extractor plus a statistic fitted on its embeddings.

    There is no training loss: ``train_cfg=dict(type='FitLoop')`` runs one
    no-grad pass over the training data.

    Args:
        backbone: config of a :class:`FeatureExtractor`.
    """

    requires_fit = True

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

    def fit_update(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        """Keep a batch's embeddings (B, D, h, w), on their device, as
        ``feature_dtype``, with their dataset indices."""
        self._parts.append(emb.to(self.feature_dtype))
        self._indices.append(indices.cpu())

    def _gather_to_main(self) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Every rank's parts and dataset indices on the main process.

        One process: the parts as kept. Distributed: the other ranks send
        their embeddings to rank 0 one rank at a time and part by part, as
        tensors (point-to-point, no pickling, no concatenated copy), so no
        rank ever holds a second copy of its features and rank 0 holds
        nothing but what it has received besides its own. Rank 0 gets every
        rank's parts in rank order; the other ranks get ``([], idx)``.
        """
        parts, idx = self._parts, torch.cat(self._indices)  # (n,)
        world = dist.get_world_size()
        if world == 1:
            return parts, idx
        shapes = dist.all_gather_object([tuple(p.shape) for p in parts])
        device = parts[0].device if parts else torch.device('cpu')
        if dist.get_rank() != 0:
            for part in parts:
                torch.distributed.send(part.contiguous(), dst=0)
            torch.distributed.send(idx.to(device), dst=0)
            return [], idx
        parts, indices = list(parts), [idx]
        for r in range(1, world):
            for shape in shapes[r]:  # (b, D, h, w) each
                buf = torch.empty(shape, dtype=self.feature_dtype, device=device)
                torch.distributed.recv(buf, src=r)
                parts.append(buf)
            ids = torch.empty(sum(s[0] for s in shapes[r]), dtype=torch.long, device=device)
            torch.distributed.recv(ids, src=r)
            indices.append(ids.cpu())
        return parts, torch.cat(indices)

    def fit_finish(self, progress: bool = True) -> None:
        """Put every rank's patches in dataset order, select the coreset.

        The patches are copied part by part into one (n*h*w, D) matrix on the
        device of the embeddings (each part is freed once copied, so the
        peak is about one copy of the features), where the selection runs.
        Distributed, only rank 0 gathers and selects (see
        :meth:`_gather_to_main`); the bank is then broadcast to every rank.
        """
        parts, idx = self._gather_to_main()
        self.fit_reset()
        if parts:
            feats = self._in_dataset_order(parts, idx)  # (n*h*w, D)
            self.memory_bank.fit(feats, progress=progress)  # rank 0 only
        if dist.get_world_size() > 1:
            self.memory_bank.broadcast_from(0)

    @staticmethod
    def _in_dataset_order(parts: List[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        """(n*h*w, D) patches of ``parts`` (b_i, D, h, w) ordered by ``idx`` (n,)."""
        d, h, w = parts[0].shape[1:]
        hw = h * w
        rank = torch.empty_like(idx)  # position of each sample in dataset order
        rank[torch.argsort(idx)] = torch.arange(len(idx))
        feats = parts[0].new_empty(len(idx) * hw, d)  # (n*h*w, D)
        offsets = torch.arange(hw, device=feats.device)
        start = 0
        while parts:
            part = parts.pop(0)  # (b, D, h, w)
            r = rank[start:start + part.shape[0]].to(feats.device)
            feats[(r[:, None] * hw + offsets).reshape(-1)] = \
                part.permute(0, 2, 3, 1).reshape(-1, d)
            start += part.shape[0]
            del part
        return feats

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

    def fit_update(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        self.gaussian.update(emb)

    def fit_finish(self, progress: bool = True) -> None:
        self.gaussian.finish()

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.gaussian.mahalanobis(self.extract(inputs))  # (B, 1, h, w)
