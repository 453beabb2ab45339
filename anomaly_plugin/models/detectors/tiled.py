"""Any detector applied to overlapping tiles of high-resolution images."""
from typing import Dict, List, Optional, Sequence, Union

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
    detector's, and so is its fit (``fit_stage``): each training image's
    tiles are fitted as images. Detectors with a training step of their own
    (several optimizers) are not supported.

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
        super().__init__(data_preprocessor=inner.data_preprocessor, init_cfg=init_cfg)
        self.detector = inner
        self.postprocessor = inner.postprocessor  # thresholds, blur and score
        self.tiler = Tiler(tile_size, tile_size if stride is None else stride)

    # -- training -----------------------------------------------------------
    def note_input_size(self, inputs: torch.Tensor) -> None:
        super().note_input_size(inputs)
        self.tiler.positions(inputs.shape[-2:])  # refuses images smaller than a tile
        self.detector.input_size.copy_(torch.tensor(self.tiler.tile_size))

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        return self.detector.loss(self.tiler.split(inputs), None)

    # -- fitting: the wrapped detector's, on tiles ------------------------------
    @property
    def fit_stage(self):
        return self.detector.fit_stage

    def fit_reset(self) -> None:
        self.detector.fit_reset()

    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        """Fit the tiles of ``inputs`` (B, 3, H, W): tile t of sample i is
        fitted as sample ``i * T + t`` of T tiles per image."""
        tiles = self.tiler.split(inputs)  # (B*T, 3, th, tw)
        t = tiles.shape[0] // inputs.shape[0]
        tile_idx = indices[:, None] * t + torch.arange(t, device=indices.device)  # (B, T)
        self.detector.fit_update(tiles, tile_idx.flatten())

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        return self.detector.fit_finish(progress=progress)

    # -- prediction -----------------------------------------------------------
    def forward_maps(self, inputs: torch.Tensor):
        tiles = self.tiler.split(inputs)  # (B*T, 3, th, tw)
        raw = self.detector.anomaly_map(tiles)  # (B*T, 1, h, w)
        return self.tiler.merge(raw, inputs.shape[-2:]), None  # (B, 1, H, W)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(inputs)[0]
