"""DRAEM: a reconstructive and a discriminative network trained on synthetic
anomalies."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from anomaly_plugin.registry import MODELS

from ..losses import reconstruction_losses
from .base import BaseAnomalyDetector


@MODELS.register_module()
class DRAEM(BaseAnomalyDetector):
    """DRAEM (Zavrtanik et al., ICCV 2021).

    Training images arrive with a synthetic anomaly drawn by the pipeline
    (:class:`SynthesizeAnomaly` with ``keep_clean=True``: the input is the
    augmented image, the sample carries the clean one and the anomaly's
    mask). The reconstructive network restores the clean image from the
    augmented one (``reconstruction_loss``, L2 + SSIM in the paper); the
    discriminative network sees the augmented image and its reconstruction
    side by side (6 channels, both in [0, 1]) and predicts the anomaly mask
    as logits (``segmentation_loss``, focal). At test time the map is the
    discriminative network's probability and the image score the maximum of
    the map mean-filtered with a ``score_filter`` square window.

    Args:
        reconstructive: network config, normalised image -> image in [0, 1]
            (an :class:`AutoEncoderNet`).
        discriminative: network config, (B, 6, H, W) -> (B, 1, H, W) logits
            (a :class:`UNet` with ``out_act='none'``).
        reconstruction_loss: loss between reconstruction and clean image; a
            :class:`CombinedLoss` logs each term.
        segmentation_loss: loss of the mask logits (:class:`FocalLoss`).
        score_filter: side of the mean filter before the image maximum
            (21 in the paper at 256 px).
    """

    def __init__(self, reconstructive: dict, discriminative: dict,
                 reconstruction_loss: Optional[dict] = None,
                 segmentation_loss: Optional[dict] = None, score_filter: int = 21, **kwargs):
        super().__init__(**kwargs)
        self.reconstructive = MODELS.build(reconstructive)
        self.discriminative = MODELS.build(discriminative)
        self.reconstruction_loss = MODELS.build(reconstruction_loss or dict(type='L2Loss'))
        self.segmentation_loss = MODELS.build(segmentation_loss or dict(type='FocalLoss'))
        if score_filter < 1 or score_filter % 2 == 0:
            raise ValueError(f'DRAEM: score_filter must be odd and >= 1, got {score_filter}')
        self.score_filter = int(score_filter)

    def segment(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised -> reconstruction (B, 3, H, W) in [0, 1] and
        mask logits (B, 1, H, W)."""
        recon = self.reconstructive(inputs)
        image = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W) in [0, 1]
        return recon, self.discriminative(torch.cat([image, recon], 1))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        clean = self.data_preprocessor.batch_clean_images(data_samples).to(inputs.device)
        mask = self.data_preprocessor.batch_masks(data_samples, inputs.shape[-2:])  # (B, H, W)
        recon, logits = self.segment(inputs)
        losses = reconstruction_losses(self.reconstruction_loss, recon, clean)
        losses['loss_focal'] = self.segmentation_loss(logits, mask.to(logits.device)[:, None])
        return losses

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.segment(inputs)[1].float())  # (B, 1, H, W)

    def forward_maps(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        amap = self.anomaly_map(inputs)
        k = self.score_filter
        score = F.avg_pool2d(amap, k, stride=1, padding=k // 2, count_include_pad=False)
        return amap, score.flatten(1).amax(1)
