"""VQ-VAE with an autoregressive prior and latent resampling.

After Wang et al., "Image Anomaly Detection Using Normal Data Only by Latent
Space Resampling" (Applied Sciences 10(23) 8660, 2020): a VQ-VAE (van den
Oord et al. 2017) learns normal images; an autoregressive prior over their
code maps gives each code's likelihood; at test time the codes the prior
finds unlikely are resampled from it and the restored code map is decoded,
so the reconstruction shows the image without its defect. The paper's prior
is PixelSNAIL; here it is a gated PixelCNN (``GatedPixelCNN``, any causal
prior with the same interface can be configured).

Both stages train in one run: the first ``vq_epochs`` epochs train the
VQ-VAE (optimizer ``autoencoder``), the remaining ones the prior on the
codes of the fixed VQ-VAE (optimizer ``prior``). The stage follows the
runner's epoch, so ``--resume`` continues in the right one; one checkpoint
holds both.
"""
import copy
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from anomaly_plugin.registry import MODELS

from ..networks.pixelcnn import SOLVERS, resample_codes
from .autoencoder import reconstruction_losses
from .multi_part import MultiPartDetector


@MODELS.register_module()
class VQVAEPrior(MultiPartDetector):
    """VQ-VAE + causal prior; anomaly map from the restored reconstruction.

    Test: codes ``c = q(E(x))``, their log-likelihoods ``log p(c_i | c_<i)``
    under the prior; codes below the threshold are resampled in raster order
    (:func:`resample_codes`), the other codes are kept; ``x_r = D(c')``.

    Maps (``map_type``): ``'residual'``, the ``map_loss`` loss's per-pixel
    map between x and x_r (squared error by default); ``'nll'``, the per-code
    negative log-likelihood upsampled (bilinear) to the input. With
    ``resample=None`` nothing is resampled: the plain VQ-VAE reconstruction.

    Threshold: ``threshold`` (a log-likelihood) when given; otherwise the
    ``threshold_quantile`` quantile of the log-likelihoods of the normal
    training codes, fitted after training by ``NormalFitHook`` and saved in
    the checkpoint.

    Args:
        autoencoder: ``AutoEncoderNet`` config whose neck is a
            ``VectorQuantizer``.
        prior: config of the prior (``GatedPixelCNN``); its ``num_codes``
            defaults to the codebook size.
        loss: reconstruction loss of stage 1 (``L2Loss``).
        map_loss: loss whose ``map`` is the residual map; defaults to ``loss``.
        vq_epochs: epochs of stage 1; ``train_cfg.max_epochs`` must be larger
            (both scaled alike when the loop trains a small set longer, see
            :meth:`scaled_epochs`).
        map_type: ``'residual'`` or ``'nll'``.
        resample: ``'sample'``, ``'argmax'`` or None (no resampling).
        threshold: log-likelihood threshold, or None to fit one.
        threshold_quantile: quantile of the normal codes' log-likelihoods.
        seed: seed of the resampling noise.
        resample_solver: ``'incremental'`` (row by row with cached
            activations, the default), ``'parallel'`` (fixed-point iteration)
            or ``'sequential'``; the same codes (see :func:`resample_codes`).
    """

    optimized = ('autoencoder', 'prior')
    MAP_TYPES = ('residual', 'nll')

    def __init__(self, autoencoder: Optional[dict] = None, prior: Optional[dict] = None,
                 loss: Optional[dict] = None, map_loss: Optional[dict] = None,
                 vq_epochs: int = 1, map_type: str = 'residual',
                 resample: Optional[str] = 'sample', threshold: Optional[float] = None,
                 threshold_quantile: float = 0.01, seed: int = 0,
                 resample_solver: str = 'incremental', **kwargs):
        super().__init__(**kwargs)
        self.autoencoder = MODELS.build(autoencoder or dict(
            type='AutoEncoderNet', neck=dict(type='VectorQuantizer', code_dim=32)))
        quantizer = self.autoencoder.neck
        if not all(callable(getattr(quantizer, a, None)) for a in ('codes', 'lookup')):
            raise TypeError(f'VQVAEPrior: the autoencoder neck must be a VectorQuantizer '
                            f'(codes/lookup), got {type(quantizer).__name__}')
        prior = copy.deepcopy(prior) if prior else dict(type='GatedPixelCNN')
        prior.setdefault('num_codes', quantizer.num_codes)
        self.prior = MODELS.build(prior)
        if getattr(self.prior, 'num_codes', quantizer.num_codes) != quantizer.num_codes:
            raise ValueError(f'VQVAEPrior: the prior models {self.prior.num_codes} codes, the '
                             f'codebook has {quantizer.num_codes}')
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.map_loss = MODELS.build(map_loss) if map_loss else self.loss_fn
        if vq_epochs < 1:
            raise ValueError(f'VQVAEPrior: vq_epochs must be >= 1, got {vq_epochs}')
        if map_type not in self.MAP_TYPES:
            raise ValueError(f'VQVAEPrior: map_type must be one of {self.MAP_TYPES}, '
                             f'got {map_type!r}')
        if resample not in ('sample', 'argmax', None):
            raise ValueError(f"VQVAEPrior: resample must be 'sample', 'argmax' or None, "
                             f'got {resample!r}')
        if not 0.0 < threshold_quantile < 1.0:
            raise ValueError(f'VQVAEPrior: threshold_quantile must be in (0, 1), got '
                             f'{threshold_quantile}')
        self.vq_epochs, self.map_type, self.resample = int(vq_epochs), map_type, resample
        self.threshold = None if threshold is None else float(threshold)
        self.threshold_quantile, self.seed = float(threshold_quantile), int(seed)
        if resample_solver not in SOLVERS:
            raise ValueError(f'VQVAEPrior: resample_solver must be one of {SOLVERS}, '
                             f'got {resample_solver!r}')
        self.resample_solver = resample_solver
        self.register_buffer('code_threshold', torch.tensor(float('-inf')))
        self.register_buffer('threshold_fitted', torch.tensor(False))
        #: ``'vq'`` or ``'prior'`` to force a stage; None follows the runner's epoch
        self.stage: Optional[str] = None

    # -- parts ------------------------------------------------------------------
    @property
    def quantizer(self):
        return self.autoencoder.neck

    def encode_codes(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, h, w) codes."""
        return self.quantizer.codes(self.autoencoder.encoder(images))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, C, H, W) image in [0, 1]."""
        return self.autoencoder.decoder(self.quantizer.lookup(codes))

    # -- training ---------------------------------------------------------------
    def current_stage(self) -> str:
        """``'vq'`` or ``'prior'``."""
        if self.stage is not None:
            return self.stage
        _, epoch, max_epochs = self.train_progress()
        vq_epochs = self.scaled_epochs(self.vq_epochs)
        if 0 < max_epochs <= vq_epochs:
            raise ValueError(
                f'VQVAEPrior: train_cfg.max_epochs ({max_epochs}) must be larger than '
                f'model.vq_epochs ({vq_epochs}): the epochs after the VQ-VAE stage '
                'train the prior')
        return 'vq' if epoch < vq_epochs else 'prior'

    def loss_autoencoder(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        z_q, _, vq_terms = self.quantizer(self.autoencoder.encoder(images))
        losses = reconstruction_losses(self.loss_fn, self.autoencoder.decoder(z_q), images)
        losses.update(vq_terms)
        return losses

    def loss_prior(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            codes = self.encode_codes(images)  # (B, h, w)
        return dict(loss_prior=self.prior.loss(codes))

    def loss_terms(self, images):
        return [lambda: self.loss_autoencoder(images), lambda: self.loss_prior(images)]

    def train_parts(self, images, optim_wrapper) -> Dict[str, torch.Tensor]:
        if self.current_stage() == 'vq':
            return self.update(optim_wrapper, 'autoencoder',
                               lambda: self.loss_autoencoder(images), freeze=('prior',))
        # prior stage: the VQ-VAE is fixed, its BatchNorm statistics and codebook too
        self.autoencoder.eval()
        return self.update(optim_wrapper, 'prior', lambda: self.loss_prior(images),
                           freeze=('autoencoder',))

    # -- threshold --------------------------------------------------------------
    def code_log_probs(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Codes (B, h, w) of images in [0, 1] and their log-likelihoods (B, h, w)."""
        codes = self.encode_codes(images)
        return codes, self.prior.log_prob(codes)

    @property
    def fit_stage(self):
        """``'after'`` when the resampling threshold is fitted (no fixed
        ``threshold``, resampling on, residual map): on the training images
        after training, by ``NormalFitHook``; otherwise None."""
        fitted = self.threshold is None and self.resample is not None \
            and self.map_type != 'nll'
        return 'after' if fitted else None

    def fit_reset(self) -> None:
        self._code_log_probs = []

    @torch.no_grad()
    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        _, logp = self.code_log_probs(self.data_preprocessor.denormalize(inputs))
        self._code_log_probs.append(logp.flatten().double().cpu())

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        """Fit the resampling threshold: the ``threshold_quantile`` of the
        normal images' code log-likelihoods.

        Returns:
            ``{'code_threshold': [t], 'mean_code_nll': [m]}``.
        """
        logp = torch.cat(self._code_log_probs).numpy()
        del self._code_log_probs
        thr = float(np.quantile(logp, self.threshold_quantile))
        self.code_threshold.fill_(thr)
        self.threshold_fitted.fill_(True)
        return dict(code_threshold=[thr], mean_code_nll=[float(-logp.mean())])

    def resample_threshold(self) -> float:
        """The log-likelihood below which codes are resampled."""
        if self.threshold is not None:
            return self.threshold
        if not bool(self.threshold_fitted):
            warnings.warn('VQVAEPrior: the resampling threshold is not fitted yet '
                          '(NormalFitHook fits it after training) '
                          'and no model.threshold is set: nothing is resampled',
                          stacklevel=3)
        return float(self.code_threshold)

    # -- test -------------------------------------------------------------------
    def restore(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Codes, their log-likelihoods, the restored codes and the restored image.

        Args:
            images: (B, C, H, W) in [0, 1].

        Returns:
            dict of ``codes`` (B, h, w), ``log_prob`` (B, h, w), ``mask``
            (B, h, w) of resampled positions, ``restored_codes`` and
            ``restored`` (B, C, H, W).
        """
        codes, logp = self.code_log_probs(images)
        if self.resample is None:
            mask = torch.zeros_like(codes, dtype=torch.bool)
            new = codes
        else:
            mask = logp < self.resample_threshold()
            new = resample_codes(self.prior, codes, mask, self.resample, self.seed,
                                 self.resample_solver)
        return dict(codes=codes, log_prob=logp, mask=mask, restored_codes=new,
                    restored=self.decode_codes(new))

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        images = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        if self.map_type == 'nll':
            _, logp = self.code_log_probs(images)
            return F.interpolate(-logp[:, None], size=images.shape[-2:], mode='bilinear',
                                 align_corners=False)  # (B, 1, H, W)
        return self.map_loss.map(self.restore(images)['restored'], images)
