"""Any detector applied to overlapping tiles of high-resolution images."""
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel

from anomaly_plugin.registry import MODELS

from ..tiling import Tiler
from .base import BaseAnomalyDetector


@MODELS.register_module()
class TiledDetector(BaseAnomalyDetector):
    """Runs ``detector`` on overlapping tiles at the image's resolution.

    The pipeline resizes images to a large ``img_size`` (e.g. about their
    native size); every image is cut into tiles of ``tile_size`` pixels,
    ``stride`` apart (the last tile of a row or column ends at the border).
    Training: the detector learns from the tiles as images (memory banks and
    Gaussians are fitted on the tiles of every training image). Prediction:
    the per-tile raw maps are upsampled to the tile, stitched back averaging
    where tiles overlap, then blurred and reduced to the image score by the
    detector's post-processor (so the image score comes from the stitched
    map, e.g. its maximum, not from per-tile scores).

    The data preprocessor, post-processor and calibration are the wrapped
    detector's. Detectors with a training step of their own (several
    optimizers) or with statistics fitted after training
    (``fit_normal_statistics``) are not supported.

    Args:
        detector: config of the wrapped detector.
        tile_size: (H, W) of a tile, or an int for square tiles.
        stride: (H, W) step between tiles (an int for both).
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, detector: dict, tile_size: Union[int, Sequence[int]] = 256,
                 stride: Union[int, Sequence[int], None] = None,
                 init_cfg: Optional[dict] = None):
        inner = MODELS.build(detector)
        name = type(inner).__name__
        if type(inner).train_step is not BaseModel.train_step:
            raise ValueError(f'TiledDetector cannot wrap {name}: it trains with a step of its '
                             'own (several optimizers); tile the images with its dataset '
                             'pipeline instead')
        if callable(getattr(inner, 'fit_normal_statistics', None)):
            raise ValueError(f'TiledDetector cannot wrap {name}: it fits statistics of whole '
                             'training images after training (fit_normal_statistics)')
        super().__init__(data_preprocessor=inner.data_preprocessor, init_cfg=init_cfg)
        self.detector = inner
        self.postprocessor = inner.postprocessor  # thresholds, blur and score
        self.requires_fit = inner.requires_fit
        self.tiler = Tiler(tile_size, tile_size if stride is None else stride)

    # -- training -----------------------------------------------------------
    def note_input_size(self, inputs: torch.Tensor) -> None:
        super().note_input_size(inputs)
        self.tiler.positions(inputs.shape[-2:])  # refuses images smaller than a tile
        self.detector.input_size.copy_(torch.tensor(self.tiler.tile_size))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        return self.detector.loss(self.tiler.split(inputs), None)

    # -- fitting (memory-bank detectors, through FitLoop) ---------------------
    def fit_reset(self) -> None:
        self.detector.fit_reset()

    @torch.no_grad()
    def extract(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, T, D, h, w) embeddings of each image's tiles."""
        emb = self.detector.extract(self.tiler.split(inputs))  # (B*T, D, h, w)
        return emb.reshape(inputs.shape[0], -1, *emb.shape[1:])

    def fit_update(self, emb: torch.Tensor, indices: torch.Tensor) -> None:
        """Args:
            emb: (B, T, D, h, w) from :meth:`extract`.
            indices: (B,) dataset indices; tile t of sample i is fitted as
                sample ``i * T + t``.
        """
        t = emb.shape[1]
        tile_idx = indices[:, None] * t + torch.arange(t, device=indices.device)  # (B, T)
        self.detector.fit_update(emb.flatten(0, 1), tile_idx.flatten())

    def fit_finish(self, progress: bool = True) -> None:
        self.detector.fit_finish(progress=progress)

    # -- prediction -----------------------------------------------------------
    def forward_maps(self, inputs: torch.Tensor):
        tiles = self.tiler.split(inputs)  # (B*T, 3, th, tw)
        raw = self.detector.anomaly_map(tiles)  # (B*T, 1, h, w)
        return self.tiler.merge(raw, inputs.shape[-2:]), None  # (B, 1, H, W)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(inputs)[0]
