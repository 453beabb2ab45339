"""CutPaste: a classifier of normal, CutPaste and CutPaste-Scar patches, scored by
a Gaussian density of its normal embeddings."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..ops import spread_patch_scores
from .base import BaseAnomalyDetector


@MODELS.register_module()
class CutPaste(BaseAnomalyDetector):
    """CutPaste (Li et al., CVPR 2021), patch-level for localisation.

    Training: the pipeline crops ``patch_size`` px patches (``RandomCrop``)
    and :class:`SynthesizeAnomaly` (``labels='kind'``) leaves each one
    normal (label 0) or draws a CutPaste (1) or a CutPaste-Scar (2) on it;
    the backbone (fine-tuned), the :class:`ProjectionHead` and a linear
    classifier learn the three classes (cross-entropy).

    Density (``fit_stage='after'``, run by ``NormalFitHook`` on the full
    training images): the embeddings of the patches ``stride`` px apart are
    fitted by one Gaussian (:class:`PatchGaussian` on 1x1 maps; the paper's
    Gaussian density estimator, with a ridge ``eps`` instead of its
    Ledoit-Wolf shrinkage: the project's choice). Map: each patch's
    Mahalanobis distance, spread over its pixels (the mean over the patches
    covering a pixel) and smoothed by the post-processor; image score: the
    map's maximum. With ``patch_size=None`` the whole image is one patch
    (image-level CutPaste; the map is then constant).

    Args:
        backbone: config of a trainable backbone returning feature maps
            (an mmpretrain backbone; the last output is used).
        head: config of the :class:`ProjectionHead` (``in_channels`` from
            the backbone when missing).
        num_classes: classes of the self-supervised task (3).
        patch_size: side of the patches, or None for whole images.
        stride: distance between scored patches.
        density: config of the :class:`PatchGaussian`.
        chunk: patches embedded at once when scoring.
    """

    fit_stage = 'after'

    def __init__(self, backbone: dict, head: Optional[dict] = None, num_classes: int = 3,
                 patch_size: Optional[int] = 64, stride: int = 8,
                 density: Optional[dict] = None, chunk: int = 1024, **kwargs):
        super().__init__(**kwargs)
        self.backbone = MODELS.build(backbone)
        head = dict(head or dict(type='ProjectionHead'))
        if 'in_channels' not in head:
            self.backbone.eval()  # a probe for the channels, BatchNorm statistics untouched
            with torch.no_grad():
                probe = self.backbone(torch.zeros(1, 3, 64, 64))
            head['in_channels'] = self._last(probe).shape[1]
            self.backbone.train()
        self.head = MODELS.build(head)
        self.classifier = nn.Linear(self.head.out_channels, num_classes)
        self.patch_size = None if patch_size is None else int(patch_size)
        self.stride, self.chunk = int(stride), int(chunk)
        self.density = MODELS.build(density or dict(type='PatchGaussian', eps=0.01))

    @staticmethod
    def _last(feats):
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, 3, P, P) normalised -> (N, D) embeddings."""
        return self.head(self._last(self.backbone(patches)))

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':  # trained on patches: the image size is noted when fitting
            return self.loss(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        labels = torch.stack([s.gt_label for s in data_samples]).to(inputs.device)  # (B,)
        logits = self.classifier(self.embed(inputs))  # (B, classes)
        return {'loss_cls': F.cross_entropy(logits.float(), labels)}  # float32 under AMP

    def dense_embeddings(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D, gh, gw): the embeddings of the patches whose
        top-left corners are ``stride`` px apart ((B, D, 1, 1) for whole images)."""
        if self.patch_size is None:
            return self.embed(inputs)[:, :, None, None]
        b, c, h, w = inputs.shape
        p, s = self.patch_size, self.stride
        if p > min(h, w):
            raise ValueError(f'CutPaste: patch_size {p} is larger than the {h}x{w} inputs')
        patches = inputs.unfold(2, p, s).unfold(3, p, s)  # (B, 3, gh, gw, P, P)
        gh, gw = patches.shape[2:4]
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, p, p)  # (B*gh*gw, 3, P, P)
        emb = torch.cat([self.embed(patches[i:i + self.chunk])
                         for i in range(0, patches.shape[0], self.chunk)])  # (B*gh*gw, D)
        return emb.view(b, gh, gw, -1).permute(0, 3, 1, 2)

    def fit_reset(self) -> None:
        self.density.reset()

    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        self.note_input_size(inputs)
        emb = self.dense_embeddings(inputs)
        self.density.update(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1], 1, 1))

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        self.density.finish()
        return {'embedding_dim': [float(self.density.mean.shape[-1])]}

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        emb = self.dense_embeddings(inputs).float()  # (B, D, gh, gw)
        b, d, gh, gw = emb.shape
        dist = self.density.mahalanobis(emb.permute(0, 2, 3, 1).reshape(-1, d, 1, 1))
        scores = dist.view(b, 1, gh, gw)
        if self.patch_size is None:
            return scores.expand(b, 1, *inputs.shape[-2:])
        return spread_patch_scores(scores, self.patch_size, self.stride, inputs.shape[-2:])
