"""Normalisation and batching of images, masks kept on the data samples."""
from typing import Optional, Sequence

import torch
from mmengine.model import ImgDataPreprocessor

from anomaly_plugin.registry import MODELS
from anomaly_plugin.structures import stack_masks


@MODELS.register_module()
class AnomalyDataPreprocessor(ImgDataPreprocessor):
    """Stack uint8 images into a normalised float batch.

    Images arrive as a list of (3, H, W) uint8 tensors, RGB, all of one size
    (the pipeline resizes them). They leave as ``(x - mean) / std``, shape
    (B, 3, H, W). Masks stay on the data samples, moved to the device;
    :meth:`batch_masks` stacks them.

    Args:
        mean: per-channel mean in 0..255 units (ImageNet by default).
        std: per-channel std in 0..255 units.
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = (123.675, 116.28, 103.53),
                 std: Optional[Sequence[float]] = (58.395, 57.12, 57.375),
                 **kwargs):
        super().__init__(mean=mean, std=std, **kwargs)

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation.

        Args:
            inputs: (B, 3, H, W) normalised batch.

        Returns:
            (B, 3, H, W) images in [0, 1].
        """
        if not self._enable_normalize:
            return inputs / 255.0
        return (inputs * self.std + self.mean) / 255.0  # (B, 3, H, W)

    @staticmethod
    def batch_clean_images(data_samples) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1]: the samples' ``clean_img`` (the images before
        :class:`SynthesizeAnomaly`), for models that learn to restore them."""
        missing = [i for i, s in enumerate(data_samples) if 'clean_img' not in s]
        if missing:
            path = data_samples[missing[0]].metainfo.get('img_path')
            raise KeyError(f"no 'clean_img' on {len(missing)} training sample(s) (first: "
                           f'{path!r}): the training pipeline needs '
                           'SynthesizeAnomaly(keep_clean=True) before PackAnomalyInputs')
        return torch.stack([s.clean_img for s in data_samples]).float() / 255.0

    @staticmethod
    def batch_masks(data_samples, shape=None) -> Optional[torch.Tensor]:
        """(B, H, W) uint8 ground-truth masks of the batch, or None."""
        return stack_masks(data_samples, shape)
