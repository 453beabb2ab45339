"""Image and map operations shared by the models (no parameters)."""
import functools
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``round(truncate * sigma)``.

    Returns:
        (2 * radius + 1,) float32 kernel summing to 1.
    """
    radius = max(1, int(math.floor(truncate * sigma + 0.5)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding.

    Args:
        x: (B, C, H, W) maps.
        sigma: standard deviation in pixels; ``<= 0`` returns ``x``.

    Returns:
        (B, C, H, W) blurred maps.
    """
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma).to(x)
    r = k.numel() // 2
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    # reflect padding needs pad < size; fall back to replicate on tiny maps
    mode = 'reflect' if r < min(h, w) else 'replicate'
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


@functools.lru_cache(maxsize=64)
def _resize_blur_operator(n_in: int, n_out: int, sigma: float, mode: str) -> torch.Tensor:
    """(n_out, n_in) float32 matrix of one axis of :func:`resize_blur`: column
    ``j`` is the response of the bilinear resize and the blur along that axis
    to the unit vector ``e_j`` (the operations of ``F.interpolate`` and
    :func:`gaussian_blur`, so the same weights)."""
    x = torch.eye(n_in).reshape(n_in, 1, n_in, 1)  # n_in maps of one column
    if n_in != n_out:
        x = F.interpolate(x, size=(n_out, 1), mode='bilinear', align_corners=False)
    if sigma > 0:
        k = gaussian_kernel1d(sigma)
        r = k.numel() // 2
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return x.reshape(n_in, n_out).t().contiguous()


def resize_blur(x: torch.Tensor, size: Tuple[int, int], sigma: float) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``) to ``size``, then
    :func:`gaussian_blur`, as two matrix products.

    Both steps are linear and act on rows and columns separately, so the
    result is ``R @ x @ C^T`` with one (H, h) and one (W, w) matrix (built
    once per size and sigma by running the two steps on unit vectors): small
    matrix products, which run near the machine's peak where a one-channel
    33-tap convolution does not. Equal to the two steps up to float rounding
    (the sums run in another order). Autocast is off inside: the maps stay
    float32.

    Args:
        x: (B, C, h, w) maps.
        size: (H, W) output size.
        sigma: the blur's standard deviation in output pixels (``<= 0``: none).

    Returns:
        (B, C, H, W) maps, float32.
    """
    height, width = (int(v) for v in size)
    h, w = x.shape[-2:]
    if (h, w) == (height, width) and sigma <= 0:
        return x.float()
    r = gaussian_kernel1d(sigma).numel() // 2 if sigma > 0 else 0
    # gaussian_blur's rule: reflect padding needs pad < size, replicate on tiny maps
    mode = 'reflect' if r < min(height, width) else 'replicate'
    rows = _resize_blur_operator(h, height, float(sigma), mode).to(x.device)  # (H, h)
    cols = _resize_blur_operator(w, width, float(sigma), mode).to(x.device)  # (W, w)
    with torch.autocast(x.device.type, enabled=False):
        return rows @ x.float() @ cols.t()  # (B, C, H, W)


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


def partition_masks(labels: torch.Tensor, cell: Tuple[int, int], size: Tuple[int, int],
                    num_masks: int) -> torch.Tensor:
    """Disjoint masks covering an image from a grid of cell labels.

    Args:
        labels: (B, gh, gw) integer label in ``[0, num_masks)`` of each cell.
        cell: (kh, kw) cell size in pixels.
        size: (H, W) image size, at most (gh * kh, gw * kw).
        num_masks: number of masks n.

    Returns:
        (B, n, H, W) float masks, 1 on the cells of each label; every pixel
        lies in exactly one mask.
    """
    h, w = size
    pix = labels.repeat_interleave(cell[0], dim=1).repeat_interleave(cell[1], dim=2)
    pix = pix[:, :h, :w]  # (B, H, W)
    return F.one_hot(pix.long(), num_masks).permute(0, 3, 1, 2).float()  # (B, n, H, W)


def gradient_attention(feats: torch.Tensor, latent: torch.Tensor,
                       create_graph: bool = False) -> torch.Tensor:
    """Gradient-based attention of Liu et al. (CVPR 2020).

    Args:
        feats: (B, F, h, w) feature map A, part of the graph of ``latent``.
        latent: (B, D) latent vector computed from ``feats``.
        create_graph: keep the graph of the gradients (to train through it).

    Returns:
        (B, 1, h, w): mean over i of ``ReLU(sum_k alpha_ik A_k)`` with
        ``alpha_ik`` the spatial mean of dz_i / dA_k.
    """
    total = torch.zeros_like(feats[:, :1])
    for i in range(latent.shape[1]):  # one backward per latent dimension
        grad, = torch.autograd.grad(latent[:, i].sum(), feats, retain_graph=True,
                                    create_graph=create_graph)
        alpha = grad.mean((2, 3), keepdim=True)  # (B, F, 1, 1)
        total = total + F.relu((alpha * feats).sum(1, keepdim=True))
    return total / latent.shape[1]


#: Patch SVDD's 8 neighbouring directions (dy, dx): the position task's label is the index
NEIGHBOUR_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _corners(n: int, height: int, width: int, size: int, generator=None) -> torch.Tensor:
    if size > min(height, width):
        raise ValueError(f'patches of {size} px do not fit in {height}x{width} images')
    hi = torch.tensor([height - size + 1, width - size + 1])
    return (torch.rand(n, 2, generator=generator) * hi).long().clamp_max(hi - 1)  # (n, 2)


def _clamp_corners(p: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    return torch.stack([p[:, 0].clamp(0, height - size), p[:, 1].clamp(0, width - size)], 1)


def position_pairs(n: int, height: int, width: int, size: int, generator=None
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Patch pairs of Patch SVDD's relative-position task.

    The first patch's top-left corner is uniform over the image; the label
    picks one of :data:`NEIGHBOUR_DIRECTIONS`; along each axis the second
    patch is ``3K/4`` plus a uniform ``[0, K/4)`` pixels away in that
    direction (adjacent, with jitter), clipped to the image.

    Args:
        n: number of pairs.
        height, width: image size.
        size: K, the patch side.
        generator: random generator (None: the global one).

    Returns:
        ``(p1, p2, labels)``: (n, 2) top-left corners (row, column) and (n,)
        labels in 0..7.
    """
    p1 = _corners(n, height, width, size, generator)
    labels = torch.randint(0, 8, (n, ), generator=generator)
    direction = torch.tensor(NEIGHBOUR_DIRECTIONS)[labels]  # (n, 2)
    jitter = torch.randint(0, max(1, size // 4), (n, 2), generator=generator)
    p2 = _clamp_corners(p1 + direction * (3 * size // 4 + jitter), height, width, size)
    return p1, p2, labels


def jitter_pairs(n: int, height: int, width: int, size: int, generator=None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Patch pairs of Patch SVDD's SVDD' loss: the second patch is the first
    moved by a non-zero offset of at most ``max(1, K/32)`` pixels per axis,
    clipped to the image.

    Returns:
        ``(p1, p2)``: (n, 2) top-left corners (row, column).
    """
    p1 = _corners(n, height, width, size, generator)
    j = max(1, size // 32)
    offsets = torch.tensor([(dy, dx) for dy in range(-j, j + 1) for dx in range(-j, j + 1)
                            if dy or dx])
    pick = torch.randint(0, len(offsets), (n, ), generator=generator)
    return p1, _clamp_corners(p1 + offsets[pick], height, width, size)


def crop_patches(images: torch.Tensor, batch_index: torch.Tensor, corners: torch.Tensor,
                 size: int) -> torch.Tensor:
    """Square crops, gathered in one indexing operation.

    Args:
        images: (B, C, H, W).
        batch_index: (n,) which image each crop comes from.
        corners: (n, 2) top-left corners (row, column).
        size: K, the crop side.

    Returns:
        (n, C, K, K) crops.
    """
    ar = torch.arange(size, device=images.device)
    corners = corners.to(images.device)
    rows = (corners[:, 0:1] + ar)[:, :, None]  # (n, K, 1)
    cols = (corners[:, 1:2] + ar)[:, None, :]  # (n, 1, K)
    b = batch_index.to(images.device)[:, None, None]
    return images.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)  # (n, C, K, K)


def spread_patch_scores(scores: torch.Tensor, size: int, stride: int,
                        out_size: Tuple[int, int]) -> torch.Tensor:
    """Pixel map from patch scores: each pixel gets the mean score of the
    patches covering it (Patch SVDD's aggregation).

    Args:
        scores: (B, 1, gh, gw) scores of the K x K patches whose top-left
            corners are ``stride`` pixels apart.
        size: K.
        stride: distance between neighbouring patches.
        out_size: (H, W) of the image; pixels beyond the last patch (when
            the grid does not reach the border) take the nearest covered
            value.

    Returns:
        (B, 1, H, W) map.
    """
    ones = scores.new_ones(1, 1, size, size)
    total = F.conv_transpose2d(scores, ones, stride=stride)
    count = F.conv_transpose2d(torch.ones_like(scores), ones, stride=stride)
    amap = total / count.clamp_min(1)  # (B, 1, (gh-1)*S+K, (gw-1)*S+K)
    h, w = out_size
    pad_h, pad_w = max(0, h - amap.shape[-2]), max(0, w - amap.shape[-1])
    if pad_h or pad_w:
        amap = F.pad(amap, (0, pad_w, 0, pad_h), mode='replicate')
    return amap[..., :h, :w]
