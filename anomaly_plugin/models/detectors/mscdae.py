"""Multi-scale convolutional denoising autoencoders on a Gaussian pyramid.

After Mei, Wang and Wen, "Automatic fabric defect detection with a
multi-scale convolutional denoising autoencoder network model" (MSCDAE,
Sensors 2018): the image is decomposed into a Gaussian pyramid, one small
convolutional denoising autoencoder per level is trained on noisy patches of
defect-free images, and the reconstruction residuals of all levels are
combined into the detection result.
"""
import copy
import warnings
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..ops import gaussian_pyramid, random_patches
from .base import BaseAnomalyDetector


@MODELS.register_module()
class MultiScalePyramidAE(BaseAnomalyDetector):
    """MSCDAE: one denoising autoencoder per Gaussian pyramid level.

    Training: the clean images in [0, 1] (optionally gray) are decomposed
    into ``num_levels`` pyramid levels (:func:`pyr_down`); from each level
    ``patches_per_image`` random ``patch_size`` crops per image are taken,
    corrupted by ``corruption`` and reconstructed by that level's
    autoencoder; the loss compares with the clean crops. All levels train
    jointly: the loss dict holds one term per level (``loss_level0`` for
    the full resolution, ...), which MMEngine adds up.

    Test: every level is reconstructed whole, without corruption; each
    level's residual map (``map_loss``'s, default the loss's per-pixel
    form) is upsampled bilinearly to the input size and the maps are fused
    with weights ``level_weights``: ``'mean'`` (weighted mean, default),
    ``'max'`` (high where any level is high) or ``'min'`` (high where all
    levels are). The paper instead thresholds each level's residual map
    separately at its own mean + gamma x std over defect-free training
    images and synthesises the binary maps. With ``standardize_levels``
    each level's map is first turned into ``(r - mean_l) / std_l`` with
    those statistics (fitted on the training images after training by
    ``NormalFitHook``, see ``fit_stage``), so
    one threshold gamma on a ``'min'`` (``'max'``) fused map flags exactly
    the pixels that every (some) level flags at gamma; the fused map stays
    continuous and one threshold is calibrated on it, which keeps the
    model's output comparable with the other detectors.

    Args:
        num_levels: pyramid levels, the input included (3).
        in_channels: image channels.
        gray: work on the channel mean (a 1-channel pyramid), as the paper
            does on gray fabric images (the autoencoder then takes and returns
            one channel).
        autoencoder: config of one level's autoencoder (image in [0, 1] ->
            image in [0, 1], any size), built once per level with its own
            weights; by default an ``AutoEncoderNet`` of a ``ConvEncoder``
            (channels 32, 64; 16 code channels) and the mirroring
            ``ConvDecoder`` for ``in_channels`` (1 when ``gray``) channels.
        patch_size: side of the training crops; None trains on whole
            levels. Levels smaller than the crop are used whole.
        patches_per_image: crops per image and level at each iteration.
        corruption: config of the training noise, a module returning
            ``(corrupted, mask)``; None gives salt-and-pepper noise on 5% of
            the pixels (``PixelNoise``), False disables it.
        loss: training loss per level; ``L2Loss`` by default.
        map_loss: loss whose ``map`` is the residual map; defaults to ``loss``.
        fusion: ``'mean'``, ``'max'`` or ``'min'``.
        level_weights: one factor per level applied before fusing; ones by
            default.
        standardize_levels: standardise each level's map by the residual
            mean and std of normal images before fusing.
    """

    FUSIONS = ('mean', 'max', 'min')

    def __init__(self, num_levels: int = 3, in_channels: int = 3, gray: bool = False,
                 autoencoder: Optional[dict] = None, patch_size: Optional[int] = 32,
                 patches_per_image: int = 8,
                 corruption: Union[dict, bool, None] = None, loss: Optional[dict] = None,
                 map_loss: Optional[dict] = None, fusion: str = 'mean',
                 level_weights: Optional[Sequence[float]] = None,
                 standardize_levels: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_levels < 1:
            raise ValueError(f'MultiScalePyramidAE: num_levels must be >= 1, got {num_levels}')
        if fusion not in self.FUSIONS:
            raise ValueError(f'MultiScalePyramidAE: fusion must be one of {self.FUSIONS}, '
                             f'got {fusion!r}')
        if patch_size is not None and patch_size < 1 or patches_per_image < 1:
            raise ValueError('MultiScalePyramidAE: patch_size (or None) and patches_per_image '
                             f'must be >= 1, got {patch_size}, {patches_per_image}')
        if level_weights is None:
            level_weights = [1.0] * num_levels
        if len(level_weights) != num_levels:
            raise ValueError(f'MultiScalePyramidAE: {len(level_weights)} level_weights for '
                             f'{num_levels} levels')
        if min(level_weights) < 0 or sum(level_weights) <= 0:
            raise ValueError('MultiScalePyramidAE: level_weights must be >= 0 with a positive '
                             f'sum, got {list(level_weights)}')
        self.num_levels = int(num_levels)
        self.gray = bool(gray)
        self.patch_size = None if patch_size is None else int(patch_size)
        self.patches_per_image = int(patches_per_image)
        self.fusion = fusion
        self.level_weights = [float(w) for w in level_weights]
        if autoencoder is None:
            c = 1 if gray else in_channels
            autoencoder = dict(
                type='AutoEncoderNet',
                encoder=dict(type='ConvEncoder', in_channels=c, channels=(32, 64),
                             latent_channels=16),
                decoder=dict(type='ConvDecoder', latent_channels=16, channels=(64, 32),
                              out_channels=c))
        self.levels = nn.ModuleList(MODELS.build(copy.deepcopy(autoencoder))
                                    for _ in range(num_levels))
        if corruption is None:
            corruption = dict(type='PixelNoise', mode='salt_pepper', amount=0.05)
        self.corruption = MODELS.build(corruption) if corruption else None
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.map_loss = MODELS.build(map_loss) if map_loss else self.loss_fn
        self.standardize_levels = bool(standardize_levels)
        # residual statistics of normal images per level (identity until fitted)
        self.register_buffer('level_mean', torch.zeros(num_levels))  # (L,)
        self.register_buffer('level_std', torch.ones(num_levels))  # (L,)
        self.register_buffer('level_stats_fitted', torch.tensor(False))

    # -- the level statistics (fit_stage 'after', run by NormalFitHook) --------
    @property
    def fit_stage(self):
        """``'after'`` with ``standardize_levels``: the level statistics are
        fitted on the training images after training; otherwise None."""
        return 'after' if self.standardize_levels else None

    def fit_reset(self) -> None:
        # per level: sum, sum of squares, count (float64, on the model's device)
        self._level_acc = torch.zeros(3, self.num_levels, dtype=torch.float64,
                                      device=self.level_mean.device)  # (3, L)

    @torch.no_grad()
    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        for i, m in enumerate(self.level_maps(inputs)):  # (B, 1, H_l, W_l)
            m = m.double()
            self._level_acc[0, i] += m.sum()
            self._level_acc[1, i] += (m * m).sum()
            self._level_acc[2, i] += m.numel()

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        """Each level's residual mean and std on the normal images.

        Returns:
            ``{'mean': [...], 'std': [...]}``, one value per level (also
            stored in the model's buffers).
        """
        total, total_sq, count = self._level_acc.cpu()
        del self._level_acc
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        if not (std > 0).all():
            raise ValueError(f'MultiScalePyramidAE: a level has constant residuals on the '
                             f'normal images (std {std.tolist()}); cannot standardise it')
        self.level_mean.copy_(mean)
        self.level_std.copy_(std)
        self.level_stats_fitted.fill_(True)
        return dict(mean=mean.tolist(), std=std.tolist())

    def pyramid(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        """Normalised (B, 3, H, W) -> pyramid levels in [0, 1], (B, C', H_l, W_l)."""
        images = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        if self.gray:
            images = images.mean(1, keepdim=True)  # (B, 1, H, W)
        return gaussian_pyramid(images, self.num_levels)

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        losses = {}
        for i, (level, ae) in enumerate(zip(self.pyramid(inputs), self.levels)):
            if self.patch_size is not None:
                size = min(self.patch_size, *level.shape[-2:])
                level = random_patches(level, size, self.patches_per_image)  # (B*N, C, P, P)
            noisy = self.corruption(level)[0] if self.corruption is not None else level
            losses[f'loss_level{i}'] = self.loss_fn(ae(noisy), level)
        return losses

    def level_maps(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        """Residual map of every level at its own size: list of (B, 1, H_l, W_l)."""
        return [self.map_loss.map(ae(level), level)
                for level, ae in zip(self.pyramid(inputs), self.levels)]

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        size = inputs.shape[-2:]
        maps = self.level_maps(inputs)
        if self.standardize_levels:
            if not bool(self.level_stats_fitted):
                warnings.warn('MultiScalePyramidAE: standardize_levels is set but the level '
                              'statistics are not fitted yet (NormalFitHook fits them after '
                              'training); the levels are fused unstandardised', stacklevel=2)
            maps = [(m - mu) / sd for m, mu, sd in zip(maps, self.level_mean, self.level_std)]
        maps = [w * (m if m.shape[-2:] == size else
                     F.interpolate(m, size=size, mode='bilinear', align_corners=False))
                for w, m in zip(self.level_weights, maps)]
        stacked = torch.stack(maps)  # (L, B, 1, H, W)
        if self.fusion == 'max':
            return stacked.max(0).values
        if self.fusion == 'min':
            return stacked.min(0).values
        return stacked.sum(0) / sum(self.level_weights)
