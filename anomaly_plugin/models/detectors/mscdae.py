"""Multi-scale convolutional denoising autoencoders on a Gaussian pyramid.

After Mei, Wang and Wen, "Automatic fabric defect detection with a
multi-scale convolutional denoising autoencoder network model" (MSCDAE,
Sensors 2018): the image is decomposed into a Gaussian pyramid, one small
convolutional denoising autoencoder per level is trained on noisy patches of
defect-free images, and the reconstruction residuals of all levels are
combined into the detection result.
"""
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS

from ..backbones.conv_encoder import ConvEncoder
from ..heads.conv_decoder import ConvDecoder
from .base import BaseAnomalyDetector


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """One Gaussian pyramid step, as OpenCV's ``pyrDown``.

    The 5x5 binomial kernel ``[1, 4, 6, 4, 1]^T [1, 4, 6, 4, 1] / 256`` is
    applied with the border mirrored without repeating the edge pixel
    (OpenCV's default ``BORDER_REFLECT_101``; edge replication on maps
    smaller than 3 pixels) and every second row and column is kept,
    starting with the first.

    Args:
        x: (B, C, H, W) images.

    Returns:
        (B, C, ceil(H / 2), ceil(W / 2)) blurred and subsampled images.
    """
    b, c, h, w = x.shape
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16
    mode = 'reflect' if min(h, w) >= 3 else 'replicate'
    # channels as batch entries: one constant (1, 1, 5, 1) kernel (exportable to ONNX)
    y = F.pad(x.reshape(b * c, 1, h, w), (2, 2, 2, 2), mode=mode)  # (B*C, 1, H + 4, W + 4)
    y = F.conv2d(y, taps.view(1, 1, 5, 1), stride=(2, 1))
    y = F.conv2d(y, taps.view(1, 1, 1, 5), stride=(1, 2))  # (B*C, 1, H', W')
    return y.reshape(b, c, y.shape[-2], y.shape[-1])


def gaussian_pyramid(x: torch.Tensor, num_levels: int) -> List[torch.Tensor]:
    """Levels ``[x, pyr_down(x), pyr_down(pyr_down(x)), ...]``.

    Args:
        x: (B, C, H, W) images.
        num_levels: number of levels including ``x`` itself (>= 1).

    Returns:
        list of (B, C, H_l, W_l), ``H_l = ceil(H_{l-1} / 2)``.
    """
    if num_levels < 1:
        raise ValueError(f'gaussian_pyramid: num_levels must be >= 1, got {num_levels}')
    levels = [x]
    for _ in range(num_levels - 1):
        levels.append(pyr_down(levels[-1]))
    return levels


def random_patches(x: torch.Tensor, size: int, num: int) -> torch.Tensor:
    """``num`` random square crops of every image (torch's global RNG).

    Args:
        x: (B, C, H, W) images.
        size: side of the crops, at most ``min(H, W)``.
        num: crops per image.

    Returns:
        (B * num, C, size, size) crops, those of image 0 first.
    """
    b, c, h, w = x.shape
    ys = torch.randint(0, h - size + 1, (b, num), device=x.device)  # (B, N) top rows
    xs = torch.randint(0, w - size + 1, (b, num), device=x.device)
    offsets = torch.arange(size, device=x.device)
    rows = (ys[..., None] + offsets)[..., :, None]  # (B, N, P, 1)
    cols = (xs[..., None] + offsets)[..., None, :]  # (B, N, 1, P)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    crops = x.permute(0, 2, 3, 1)[batch, rows, cols]  # (B, N, P, P, C)
    return crops.permute(0, 1, 4, 2, 3).reshape(b * num, c, size, size)


class LevelAutoEncoder(nn.Module):
    """Fully convolutional denoising autoencoder of one pyramid level.

    ``ConvEncoder`` + ``ConvDecoder``; inputs whose sides are not multiples
    of the encoder's downsampling factor are padded (edge replication) and
    the output cropped back.

    Args:
        in_channels: image channels.
        channels: encoder channels per stride-2 stage (mirrored by the decoder).
        latent_channels: channels of the code.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], latent_channels: int):
        super().__init__()
        self.encoder = ConvEncoder(in_channels, channels, latent_channels)
        self.decoder = ConvDecoder(latent_channels, list(channels)[::-1], in_channels)
        self.multiple = self.encoder.downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) in [0, 1] -> (B, C, h, w) reconstruction in [0, 1]."""
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        return self.decoder(self.encoder(x))[..., :h, :w]


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
    level's residual map (``score_map``'s, default the loss's per-pixel
    form) is upsampled bilinearly to the input size and the maps are fused
    with weights ``level_weights``: ``'mean'`` (weighted mean, default),
    ``'max'`` (high where any level is high) or ``'min'`` (high where all
    levels are). The paper instead thresholds each level's residual map
    separately at its own mean + gamma x std over defect-free training
    images and synthesises the binary maps. With ``standardize_levels``
    each level's map is first turned into ``(r - mean_l) / std_l`` with
    those statistics (fitted by :meth:`fit_normal_statistics`, which
    ``CalibrationHook`` calls on the training images after training), so
    one threshold gamma on a ``'min'`` (``'max'``) fused map flags exactly
    the pixels that every (some) level flags at gamma; the fused map stays
    continuous and one threshold is calibrated on it, which keeps the
    model's output comparable with the other detectors.

    Args:
        num_levels: pyramid levels, the input included (3).
        in_channels: image channels.
        gray: work on the channel mean (a 1-channel pyramid), as the paper
            does on gray fabric images.
        channels: encoder channels of each level's autoencoder.
        latent_channels: code channels of each level's autoencoder.
        patch_size: side of the training crops; None trains on whole
            levels. Levels smaller than the crop are used whole.
        patches_per_image: crops per image and level at each iteration.
        corruption: config of the training noise, a module returning
            ``(corrupted, mask)``; None gives salt-and-pepper noise on 5% of
            the pixels (``PixelNoise``), False disables it.
        loss: training loss per level; ``L2Loss`` by default.
        score_map: loss whose ``map`` is the residual map; defaults to ``loss``.
        fusion: ``'mean'``, ``'max'`` or ``'min'``.
        level_weights: one factor per level applied before fusing; ones by
            default.
        standardize_levels: standardise each level's map by the residual
            mean and std of normal images before fusing.
    """

    FUSIONS = ('mean', 'max', 'min')

    def __init__(self, num_levels: int = 3, in_channels: int = 3, gray: bool = False,
                 channels: Sequence[int] = (32, 64), latent_channels: int = 16,
                 patch_size: Optional[int] = 32, patches_per_image: int = 8,
                 corruption: Union[dict, bool, None] = None, loss: Optional[dict] = None,
                 score_map: Optional[dict] = None, fusion: str = 'mean',
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
        ae_channels = 1 if gray else in_channels
        self.levels = nn.ModuleList(
            LevelAutoEncoder(ae_channels, channels, latent_channels) for _ in range(num_levels))
        if corruption is None:
            corruption = dict(type='PixelNoise', mode='salt_pepper', amount=0.05)
        self.corruption = MODELS.build(corruption) if corruption else None
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.score_fn = MODELS.build(score_map) if score_map else self.loss_fn
        self.standardize_levels = bool(standardize_levels)
        # residual statistics of normal images per level (identity until fitted)
        self.register_buffer('level_mean', torch.zeros(num_levels))  # (L,)
        self.register_buffer('level_std', torch.ones(num_levels))  # (L,)
        self.register_buffer('level_stats_fitted', torch.tensor(False))

    @torch.no_grad()
    def fit_normal_statistics(self, dataloader: Iterable) -> Dict[str, List[float]]:
        """Fit each level's residual mean and std on defect-free images.

        Args:
            dataloader: batches as the model's ``data_preprocessor`` takes them
                (test pipeline, normal images only).

        Returns:
            ``{'mean': [...], 'std': [...]}``, one value per level (also
            stored in the model's buffers). Does nothing and returns an empty
            dict unless ``standardize_levels`` is set.
        """
        if not self.standardize_levels:
            return {}
        # per level: sum, sum of squares, count; on the model's device, read once
        acc = torch.zeros(3, self.num_levels, dtype=torch.float64,
                          device=self.level_mean.device)  # (3, L)
        for inputs in self.eval_batches(dataloader):  # (B, 3, H, W)
            for i, m in enumerate(self.level_maps(inputs)):  # (B, 1, H_l, W_l)
                m = m.double()
                acc[0, i] += m.sum()
                acc[1, i] += (m * m).sum()
                acc[2, i] += m.numel()
        total, total_sq, count = acc.cpu()
        if not count.all():
            raise ValueError('fit_normal_statistics: the data loader gave no images')
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        if not (std > 0).all():
            raise ValueError(f'fit_normal_statistics: a level has constant residuals '
                             f'(std {std.tolist()}); cannot standardise it')
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
        return [self.score_fn.map(ae(level), level)
                for level, ae in zip(self.pyramid(inputs), self.levels)]

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        size = inputs.shape[-2:]
        maps = self.level_maps(inputs)
        if self.standardize_levels:
            if not bool(self.level_stats_fitted):
                warnings.warn('MultiScalePyramidAE: standardize_levels is set but the level '
                              'statistics are not fitted yet (fit_normal_statistics); the '
                              'levels are fused unstandardised', stacklevel=2)
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
