"""Image and map operations shared by the models (no parameters)."""
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
