"""Reconstruction by inpainting (RIAD)."""
from typing import Dict, Optional, Sequence, Tuple

import torch

from anomaly_plugin.registry import MODELS

from ..losses import reconstruction_losses
from ..ops import partition_masks
from .base import BaseAnomalyDetector


@MODELS.register_module()
class RIAD(BaseAnomalyDetector):
    """Reconstruction by inpainting for visual anomaly detection.

    Zavrtanik, Kristan and Skocaj, Pattern Recognition 2021. The image is
    split into a grid of square cells of size k; the cells are randomly
    partitioned into ``num_masks`` disjoint sets of (nearly) equal size
    (each cell in exactly one set). Each set is hidden in turn (the
    normalised input is multiplied by ``1 - mask``, so hidden pixels take the
    dataset mean colour), the network inpaints every masked copy (one
    batched pass of B * n images), and the reconstruction keeps from each
    inpainted copy the region that was hidden in it.

    Training: one k drawn uniformly from the cell sizes per iteration and an
    independent random partition per image; the loss compares the combined
    reconstruction with the input in [0, 1] (``L2 + SSIM + MSGMS`` with unit
    weights by default, as in the paper and the reference code; a
    ``CombinedLoss`` logs its terms separately).

    Test: for every k a fixed partition, drawn from
    ``torch.Generator().manual_seed(seed + k)`` and shared by all images, so
    the maps do not depend on the run or the batch; the map is
    ``map_loss.map(reconstruction, input)`` (MSGMS by default, smoothed by
    its mean filter) averaged over the cell sizes.

    Cell sizes are given for a ``ref_size`` (256) square image, as in the
    paper's (2, 4, 8, 16) px at 256 x 256: for an H x W input a size s
    becomes ``max(1, round(s * H / ref_size))`` rows by
    ``max(1, round(s * W / ref_size))`` columns, so the grid has the same
    number of cells as at 256 x 256 (e.g. 1, 2, 4, 8 px at 128 x 128).
    ``ref_size=None`` uses the sizes as given, in pixels.

    Args:
        inpainter: config of the inpainting network (image -> image in
            [0, 1]); a :class:`UNet` with its defaults (Ronneberger's,
            64-1024 channels) by default.
        cutout_sizes: cell sizes at ``ref_size``.
        num_masks: number n of disjoint masks (3).
        ref_size: image side the cell sizes refer to, or None.
        loss: training loss; ``CombinedLoss`` of ``L2Loss``, ``SSIMLoss``
            and ``MSGMSLoss`` with weight 1 by default.
        map_loss: loss whose ``map`` is the anomaly map; ``MSGMSLoss`` by
            default.
        seed: base seed of the test-time partitions.
        **kwargs: arguments of :class:`BaseAnomalyDetector`.
    """

    #: checkpoints saved before the network was named for its role call it
    #: ``generator``
    renamed_parts = {'generator.': 'inpainter.'}

    def __init__(self, inpainter: Optional[dict] = None,
                 cutout_sizes: Sequence[int] = (2, 4, 8, 16), num_masks: int = 3,
                 ref_size: Optional[int] = 256, loss: Optional[dict] = None,
                 map_loss: Optional[dict] = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.cutout_sizes = tuple(int(s) for s in cutout_sizes)
        if not self.cutout_sizes or min(self.cutout_sizes) < 1:
            raise ValueError(f'RIAD: cutout_sizes must be positive integers, got {cutout_sizes}')
        if num_masks < 2:
            raise ValueError(f'RIAD: num_masks must be >= 2, got {num_masks}')
        if ref_size is not None and ref_size < 1:
            raise ValueError(f'RIAD: ref_size must be positive or None, got {ref_size}')
        self.num_masks = int(num_masks)
        self.ref_size = ref_size
        self.seed = int(seed)
        self.inpainter = MODELS.build(inpainter or dict(type='UNet'))
        self.loss_fn = MODELS.build(loss or dict(type='CombinedLoss', losses=[
            dict(type='L2Loss'), dict(type='SSIMLoss'), dict(type='MSGMSLoss')]))
        self.map_loss = MODELS.build(map_loss or dict(type='MSGMSLoss'))

    def cell_size(self, size: int, hw: Tuple[int, int]) -> Tuple[int, int]:
        """(rows, cols) in pixels of cell size ``size`` on an ``hw`` image."""
        if self.ref_size is None:
            return size, size
        return tuple(max(1, round(size * n / self.ref_size)) for n in hw)

    def make_masks(self, batch: int, hw: Tuple[int, int], size: int,
                   generator: Optional[torch.Generator] = None,
                   device=None) -> torch.Tensor:
        """Random partition of the cell grid into ``num_masks`` disjoint masks.

        The cells are ranked by a random permutation and rank r goes to
        mask ``r * n // num_cells``, so the masks have (nearly) equal cell
        counts.

        Args:
            batch: number of independent partitions.
            hw: (H, W) image size.
            size: cell size at ``ref_size``.
            generator: CPU random generator (the global one when None).
            device: device of the result.

        Returns:
            (batch, n, H, W) float masks; they sum to 1 at every pixel.
        """
        kh, kw = self.cell_size(size, hw)
        gh, gw = -(-hw[0] // kh), -(-hw[1] // kw)  # ceil: cells cover the image
        noise = torch.rand(batch, gh * gw, generator=generator)  # (batch, cells), on CPU
        ranks = noise.argsort(1).argsort(1)  # (batch, cells) random permutation ranks
        labels = (ranks * self.num_masks) // (gh * gw)  # (batch, cells) in [0, n)
        labels = labels.view(batch, gh, gw).to(device)
        return partition_masks(labels, (kh, kw), hw, self.num_masks)

    def inpaint(self, inputs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Combined reconstruction of every region from the copy hiding it.

        Args:
            inputs: (B, 3, H, W) normalised images.
            masks: (B, n, H, W) or (1, n, H, W) disjoint masks covering the
                image (1 = hidden).

        Returns:
            (B, 3, H, W) reconstruction in [0, 1].
        """
        b, c, h, w = inputs.shape
        masks = masks.expand(b, -1, -1, -1)  # (B, n, H, W)
        n = masks.shape[1]
        hidden = inputs[:, None] * (1 - masks[:, :, None])  # (B, n, 3, H, W)
        recon = self.inpainter(hidden.reshape(b * n, c, h, w)).view(b, n, -1, h, w)
        return (recon * masks[:, :, None]).sum(1)  # (B, 3, H, W)

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        target = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        pick = int(torch.randint(len(self.cutout_sizes), ()).item())
        masks = self.make_masks(inputs.shape[0], tuple(inputs.shape[-2:]),
                                self.cutout_sizes[pick], device=inputs.device)
        return reconstruction_losses(self.loss_fn, self.inpaint(inputs, masks), target)

    def test_masks(self, hw: Tuple[int, int], size: int, device=None) -> torch.Tensor:
        """The fixed (1, n, H, W) test-time partition of cell size ``size``.

        Kept once computed (a traced or exported graph then holds them as
        constants instead of random-number operations).
        """
        key = (hw, size, str(device), self.num_masks, self.ref_size, self.seed)
        cache = self.__dict__.setdefault('_test_mask_cache', {})
        if key not in cache:
            gen = torch.Generator().manual_seed(self.seed + size)
            cache[key] = self.make_masks(1, hw, size, generator=gen, device=device)
        return cache[key]

    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        target = self.data_preprocessor.denormalize(inputs)  # (B, 3, H, W)
        hw = tuple(int(v) for v in inputs.shape[-2:])
        maps = [self.map_loss.map(self.inpaint(inputs, self.test_masks(hw, s, inputs.device)),
                                  target) for s in self.cutout_sizes]  # each (B, 1, H, W)
        return torch.stack(maps).mean(0)
