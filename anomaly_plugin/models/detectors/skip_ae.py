"""Autoencoder with skip connections trained on stained images.

Collin and De Vleeschouwer, "Improved anomaly detection by training an
autoencoder with skip connections on images corrupted with Stain-shaped
noise" (ICPR 2020): skip connections keep the reconstruction sharp, and
because the network only ever sees stained inputs while it must return the
clean image, it cannot learn the identity; at test time a real defect is
treated like a stain and removed from the reconstruction.
"""
from typing import Dict, Optional, Union

import torch

from anomaly_plugin.registry import MODELS

from ..losses import reconstruction_losses
from .base import BaseAnomalyDetector


@MODELS.register_module()
class SkipAutoEncoder(BaseAnomalyDetector):
    """Skip-connected autoencoder trained to remove synthetic corruptions.

    Training: the clean images in [0, 1] (normalisation undone) are
    corrupted by ``corruption`` (``StainNoise`` by default), the network
    reconstructs them and the loss compares the reconstruction with the
    clean images. Test: no corruption; the anomaly map is ``map_loss``'s
    (default: the loss's) per-pixel form between the reconstruction and the
    input. The network works on images in [0, 1], not on normalised ones.

    Args:
        autoencoder: config of the network (image in [0, 1] -> image in
            [0, 1]); by default the paper's :class:`UNet`: four stride-2
            levels (32, 64, 128, 128 channels, 3x3 convs, LeakyReLU),
            bilinear upsampling, concatenated skips (``merge='add'`` for the
            authors' additive ones), a conv block and a 3x3 conv at the input
            resolution, a sigmoid.
        corruption: config of the training corruption, a module returning
            ``(corrupted, mask)``; None gives ``StainNoise()``, False
            disables it (then the skips make the identity easy to learn).
        loss: training loss; ``L2Loss`` by default (the paper's MSE).
        map_loss: loss whose ``map`` is the anomaly map; defaults to ``loss``.
    """

    #: checkpoints saved before the network was a configured :class:`UNet`
    renamed_parts = {'net.down.': 'autoencoder.downs.', 'net.up.': 'autoencoder.merges.',
                     'net.head.': 'autoencoder.head.'}

    def __init__(self, autoencoder: Optional[dict] = None,
                 corruption: Union[dict, bool, None] = None,
                 loss: Optional[dict] = None, map_loss: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.autoencoder = MODELS.build(autoencoder or dict(
            type='UNet', channels=(32, 64, 128, 128), down='stride', level_convs=1,
            act='leaky_relu', up='bilinear', merge_convs=1, skip_first=False, head_convs=1,
            out_kernel=3))
        if corruption is None:
            corruption = dict(type='StainNoise')
        self.corruption = MODELS.build(corruption) if corruption else None
        self.loss_fn = MODELS.build(loss or dict(type='L2Loss'))
        self.map_loss = MODELS.build(map_loss) if map_loss else self.loss_fn

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in [0, 1] -> (B, C, H, W) reconstruction in [0, 1]."""
        return self.autoencoder(images)

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        clean = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W) in [0, 1]
        corrupted = self.corruption(clean)[0] if self.corruption is not None else clean
        return reconstruction_losses(self.loss_fn, self.reconstruct(corrupted), clean)

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        images = self.data_preprocessor.denormalize(inputs)
        return self.map_loss.map(self.reconstruct(images), images)  # (B, 1, H, W)
