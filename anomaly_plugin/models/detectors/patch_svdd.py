"""Patch SVDD: a patch encoder trained with SVDD' and a relative-position task,
scored by each test patch's distance to the nearest normal patch."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine import dist

from anomaly_plugin.engine.dist import gather_parts_to_main, patches_in_dataset_order
from anomaly_plugin.registry import MODELS

from ..ops import crop_patches, jitter_pairs, position_pairs, spread_patch_scores
from ..utils import step_generator
from .base import BaseAnomalyDetector


@MODELS.register_module()
class PatchSVDD(BaseAnomalyDetector):
    """Patch SVDD (Yi and Yoon, ACCV 2020), at the paper's two patch sizes.

    Training (from scratch, on normal images): for each patch size K (64 and
    32) and each image, ``pairs_per_image`` random pairs for each task.
    SVDD': the mean of ``||f(p) - f(p')||_2`` (the norm, not its square)
    between a patch and a copy moved by a few pixels (pulls neighbouring
    normal features together without a single centre); the relative-position
    task: a classifier tells from ``f(p1)`` and ``f(p2)`` which of the 8
    neighbouring positions ``p2`` was taken from
    (:func:`~anomaly_plugin.models.ops.position_pairs`, cross-entropy), each
    patch shifted per channel and noised per pixel by ``position_noise``
    standard deviations so that colour and edge continuity give no shortcut
    (the reference implementation's perturbation, 0.02).
    Loss: ``svdd_weight * SVDD' + position``, both sizes summed.

    Normal patches (``fit_stage='after'``, run by ``NormalFitHook``): the
    embeddings of the training images' patches at ``strides`` apart are
    kept in one :class:`KNNMemoryBank` per size. Map: each test patch's
    distance to its nearest kept embedding, spread over the patch's pixels
    (the mean over the patches covering a pixel), the two sizes' maps
    multiplied; image score: the post-processor's reduction (max) of the
    smoothed map.

    Args:
        encoder: config of a :class:`PatchSVDDEncoder`.
        classifier_big, classifier_small: configs of the
            :class:`PatchPositionClassifier` of the 64 and 32 px patches.
        svdd_weight: lambda, the weight of SVDD'.
        pairs_per_image: pairs per image, size and task in each step.
        position_noise: standard deviation (input units) of the per-channel
            shift and of the per-pixel noise added to the position task's
            patches; 0 turns it off.
        strides: distances (px, even) between the kept and the scored
            patches, for the 64 and the 32 px patches.
        memory_bank: config of each size's :class:`KNNMemoryBank`.
    """

    fit_stage = 'after'
    sizes = (64, 32)

    def __init__(self, encoder: Optional[dict] = None, classifier_big: Optional[dict] = None,
                 classifier_small: Optional[dict] = None, svdd_weight: float = 1.0,
                 pairs_per_image: int = 8, position_noise: float = 0.02,
                 strides: Sequence[int] = (16, 8),
                 memory_bank: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = MODELS.build(encoder or dict(type='PatchSVDDEncoder'))
        dim = self.encoder.dim
        self.classifier_big = MODELS.build(
            classifier_big or dict(type='PatchPositionClassifier', dim=dim))
        self.classifier_small = MODELS.build(
            classifier_small or dict(type='PatchPositionClassifier', dim=dim))
        self.svdd_weight = float(svdd_weight)
        self.pairs_per_image = int(pairs_per_image)
        self.position_noise = float(position_noise)
        if len(strides) != 2 or any(s % self.encoder.stride for s in strides):
            raise ValueError(f'strides must be two multiples of {self.encoder.stride}, '
                             f'got {strides}')
        self.strides = tuple(int(s) for s in strides)
        bank = memory_bank or dict(type='KNNMemoryBank', coreset_ratio=1.0)
        self.bank_big = MODELS.build(bank)
        self.bank_small = MODELS.build(bank)
        self._parts: Dict[int, List[torch.Tensor]] = {}
        self._indices: List[torch.Tensor] = []
        # the pairs come from a generator seeded by the saved step count
        self.register_buffer('train_steps', torch.zeros((), dtype=torch.long))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        b, _, h, w = inputs.shape
        n = b * self.pairs_per_image
        which = torch.arange(b).repeat_interleave(self.pairs_per_image)  # (n,)
        loss_svdd = loss_pos = 0.0
        gen = step_generator(self.train_steps)
        for size, classifier in zip(self.sizes, (self.classifier_big, self.classifier_small)):
            p1, p2, labels = position_pairs(n, h, w, size, generator=gen)
            pair = torch.cat([crop_patches(inputs, which, p1, size),
                              crop_patches(inputs, which, p2, size)])  # (2n, C, K, K)
            if self.position_noise > 0:  # no shortcut through colour or edge continuity
                shift = torch.randn(2 * n, pair.shape[1], 1, 1, generator=gen)
                noise = torch.randn(pair.shape, generator=gen)
                pair = pair + self.position_noise * (shift + noise).to(pair)
            h1, h2 = self.encoder(pair, size).chunk(2)  # (n, D, 1, 1) each
            loss_pos = loss_pos + F.cross_entropy(classifier(h1, h2), labels.to(inputs.device))
            q1, q2 = jitter_pairs(n, h, w, size, generator=gen)
            e1, e2 = self.encoder(torch.cat([crop_patches(inputs, which, q1, size),
                                             crop_patches(inputs, which, q2, size)]),
                                  size).chunk(2)
            loss_svdd = loss_svdd + (e1 - e2).flatten(1).norm(dim=1).mean()
        return {'loss_svdd': self.svdd_weight * loss_svdd, 'loss_pos': loss_pos}

    def embed(self, inputs: torch.Tensor) -> Dict[int, torch.Tensor]:
        """Both patch sizes' embeddings from one pass of the small encoder.

        Args:
            inputs: (B, 3, H, W) normalised images.

        Returns:
            ``{64: (B, D, gh, gw), 32: (B, D, gh', gw')}``: the patches'
            embeddings, their top-left corners ``strides`` px apart (the dense
            stride-2 maps, subsampled).
        """
        small = self.encoder.embed_small(inputs)  # (B, D, (H - 32) / 2 + 1, ...)
        out = {}
        for size, stride in zip(self.sizes, self.strides):
            step = stride // self.encoder.stride
            dense = self.encoder.big(small) if size == self.encoder.big_size else small
            out[size] = dense[..., ::step, ::step]
        return out

    def _banks(self):
        return dict(zip(self.sizes, (self.bank_big, self.bank_small)))

    def fit_reset(self) -> None:
        self._parts = {size: [] for size in self.sizes}
        self._indices = []

    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        for size, emb in self.embed(inputs).items():
            self._parts[size].append(emb)
        self._indices.append(indices.cpu())

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        """Every rank's patch embeddings in dataset order into each size's bank
        (gathered and selected on rank 0, then broadcast)."""
        idx = torch.cat(self._indices)
        stats = {}
        for size, bank in self._banks().items():
            parts, order = gather_parts_to_main(self._parts[size], idx, torch.float32)
            if parts:
                bank.fit(patches_in_dataset_order(parts, order), progress=progress)
            if dist.get_world_size() > 1:
                bank.broadcast_from(0)
            stats[f'bank_{size}px'] = [float(bank.bank.shape[0])]
        self.fit_reset()
        return stats

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        out = None
        embeddings = self.embed(inputs)
        for (size, bank), stride in zip(self._banks().items(), self.strides):
            emb = embeddings[size]  # (B, D, gh, gw)
            b, d, gh, gw = emb.shape
            dists, _ = bank.query(emb.permute(0, 2, 3, 1).reshape(-1, d), k=1)  # (B*gh*gw, 1)
            scores = dists[:, 0].reshape(b, 1, gh, gw)
            amap = spread_patch_scores(scores, size, stride, inputs.shape[-2:])
            out = amap if out is None else out * amap
        return out  # (B, 1, H, W)
