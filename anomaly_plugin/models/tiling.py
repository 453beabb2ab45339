"""Overlapping tiles of an image batch and stitching per-tile maps back.

High-resolution parts lose small defects when squashed to a network's input
size. A tiler cuts the batch at its own resolution into overlapping tiles,
lets a detector score every tile as an image, and stitches the per-tile maps
back, averaging where tiles overlap.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F


def _as_pair(value, name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f'{name} must be a positive int or (H, W) pair, got {value}')
    return value


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Start offsets of tiles of ``tile`` pixels, ``stride`` apart, covering
    ``[0, length)``; the last tile ends at the border (it may overlap more).

    Raises:
        ValueError: the image is smaller than one tile.
    """
    if length < tile:
        raise ValueError(f'an image side of {length} px is smaller than the tile ({tile} px): '
                         'use a smaller tile_size or a larger img_size')
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


class Tiler:
    """Tile geometry of a fixed image size.

    Args:
        tile_size: (H, W) of a tile (an int means square).
        stride: (H, W) step between tiles; smaller than the tile to overlap.
    """

    def __init__(self, tile_size, stride):
        self.tile_size = _as_pair(tile_size, 'tile_size')
        self.stride = _as_pair(stride, 'stride')
        if any(s > t for s, t in zip(self.stride, self.tile_size)):
            raise ValueError(f'stride {self.stride} larger than tile_size {self.tile_size} '
                             'would leave pixels uncovered')

    def positions(self, size: Sequence[int]) -> List[Tuple[int, int]]:
        """(top, left) of every tile of an (H, W) image, row by row."""
        th, tw = self.tile_size
        sh, sw = self.stride
        return [(y, x) for y in tile_starts(int(size[0]), th, sh)
                for x in tile_starts(int(size[1]), tw, sw)]

    def num_tiles(self, size: Sequence[int]) -> int:
        return len(self.positions(size))

    def split(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B * T, C, th, tw), the tiles of image b at rows
        ``b * T .. b * T + T - 1``."""
        th, tw = self.tile_size
        tiles = [images[:, :, y:y + th, x:x + tw]
                 for y, x in self.positions(images.shape[-2:])]
        return torch.stack(tiles, 1).flatten(0, 1)  # (B*T, C, th, tw)

    def merge(self, tile_maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Stitch per-tile maps back into (B, C, H, W) maps of an (H, W) image.

        Args:
            tile_maps: (B * T, C, h, w) maps of the tiles in :meth:`split`'s
                order, at any resolution (upsampled bilinearly to the tile).
            size: (H, W) of the images.

        Returns:
            (B, C, H, W) float32: each pixel the mean over the tiles that
            cover it.
        """
        pos = self.positions(size)
        th, tw = self.tile_size
        maps = tile_maps.float()
        if tuple(maps.shape[-2:]) != (th, tw):
            maps = F.interpolate(maps, size=(th, tw), mode='bilinear', align_corners=False)
        maps = maps.reshape(-1, len(pos), *maps.shape[1:])  # (B, T, C, th, tw)
        out = maps.new_zeros(maps.shape[0], maps.shape[2], int(size[0]), int(size[1]))
        count = maps.new_zeros(1, 1, int(size[0]), int(size[1]))
        for t, (y, x) in enumerate(pos):
            out[:, :, y:y + th, x:x + tw] += maps[:, t]
            count[:, :, y:y + th, x:x + tw] += 1
        return out / count
