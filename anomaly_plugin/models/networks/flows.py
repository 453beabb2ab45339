"""Normalizing flows: the affine coupling block and a stack of them.

The plugin's own implementation (no flow library): a block is invertible in
closed form and returns its exact log-determinant, both tested against a
direct computation (inverse, autograd Jacobian). Feature maps are
(B, C, H, W); vectors go in as (N, C, 1, 1) with 1x1 sub-networks.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def coupling_subnet(cin: int, cout: int, kernel_size: int, hidden: int) -> nn.Sequential:
    """conv(k) -> ReLU -> conv(k), size-preserving: (B, cin, H, W) -> (B, cout, H, W)."""
    pad = kernel_size // 2
    return nn.Sequential(nn.Conv2d(cin, hidden, kernel_size, padding=pad), nn.ReLU(),
                         nn.Conv2d(hidden, cout, kernel_size, padding=pad))


@MODELS.register_module()
class AffineCouplingBlock(BaseModule):
    """One flow step: affine coupling, a learned per-channel affine map, a
    fixed channel permutation.

    The input is split along channels into ``x1`` (first ``ceil(C/2)``) and
    ``x2``; a sub-network reads ``x1`` (and the condition, when given) and
    outputs ``a = 0.1 * subnet(x1, c)``, whose halves are a log-scale, softly
    clamped to ``(-clamp, clamp)``, ``s = clamp * tanh(a_s)``, and a shift
    ``t = a_t``; ``x2' = x2 * exp(s) + t``. Then every channel is scaled by
    ``exp(log_scale)`` and shifted (an ActNorm without data-dependent init),
    and the channels are permuted so that the next block transforms the
    other half. This is the step of the FastFlow and CFLOW-AD reference
    implementations (coupling, global affine, hard permutation, the 0.1
    factor and soft clamp), with the global scale parameterised as an
    exponential (the project's choice).

    Args:
        channels: C, the channels transformed.
        cond_channels: channels of the condition concatenated to ``x1`` at
            the sub-network's input (0: unconditional).
        kernel_size: the sub-network's kernel (odd; 1 for vectors).
        hidden_ratio: hidden channels of the sub-network per input channel.
        clamp: bound of the log-scale.
        seed: seed of the channel permutation.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, channels: int, cond_channels: int = 0, kernel_size: int = 3,
                 hidden_ratio: float = 1.0, clamp: float = 2.0, seed: int = 0,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if channels < 2:
            raise ValueError(f'a coupling block needs at least 2 channels, got {channels}')
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd, got {kernel_size}')
        self.channels = int(channels)
        self.cond_channels = int(cond_channels)
        self.split = channels - channels // 2  # x1's channels
        self.clamp = float(clamp)
        cin = self.split + self.cond_channels
        hidden = max(1, int(round(cin * hidden_ratio)))
        self.subnet = coupling_subnet(cin, 2 * (channels - self.split), kernel_size, hidden)
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, channels, 1, 1))
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(channels, generator=gen)
        self.register_buffer('perm', perm)
        self.register_buffer('inv_perm', torch.argsort(perm))

    def _scale_shift(self, x1: torch.Tensor, cond: Optional[torch.Tensor]
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.cond_channels:
            if cond is None:
                raise ValueError('this block is conditional: give cond')
            x1 = torch.cat([x1, cond.expand(-1, -1, *x1.shape[2:])], 1)
        # the sub-network may run in 16 bits under autocast; the coupling's
        # exponentials and log-determinant stay in float32
        a = 0.1 * self.subnet(x1).to(_at_least_float32(x1.dtype))  # (B, 2 * C2, H, W)
        a_s, t = a.chunk(2, 1)
        return self.clamp * torch.tanh(a_s), t

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Args:
            x: (B, C, H, W).
            cond: (B, C_c, H, W) or (B, C_c, 1, 1) (broadcast), when
                conditional.

        Returns:
            ``(y, log_det)``: y (B, C, H, W), log|det dy/dx| (B,).
        """
        x = x.to(_at_least_float32(x.dtype))
        x1, x2 = x[:, :self.split], x[:, self.split:]
        s, t = self._scale_shift(x1, cond)
        y = torch.cat([x1, x2 * torch.exp(s) + t], 1)
        y = y * torch.exp(self.log_scale) + self.shift
        pixels = x.shape[2] * x.shape[3]
        log_det = s.flatten(1).sum(1) + pixels * self.log_scale.sum()
        return y.index_select(1, self.perm), log_det

    def inverse(self, y: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The exact inverse of :meth:`forward`: (B, C, H, W) -> (B, C, H, W)."""
        y = y.to(_at_least_float32(y.dtype)).index_select(1, self.inv_perm)
        y = (y - self.shift) * torch.exp(-self.log_scale)
        x1, y2 = y[:, :self.split], y[:, self.split:]
        s, t = self._scale_shift(x1, cond)
        return torch.cat([x1, (y2 - t) * torch.exp(-s)], 1)


@MODELS.register_module()
class FlowStack(BaseModule):
    """A sequence of :class:`AffineCouplingBlock` s (one normalizing flow).

    Args:
        channels: C, the channels transformed.
        num_blocks: number of coupling blocks.
        kernel_sizes: sub-network kernels, cycled over the blocks (FastFlow
            alternates 3x3 and 1x1: ``(3, 1)``; vectors: ``(1,)``).
        hidden_ratio: hidden channels of each sub-network per input channel.
        clamp: bound of each block's log-scale.
        cond_channels: channels of the condition every block reads (0: none).
        seed: seed of the first block's permutation (block i uses seed + i).
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, channels: int, num_blocks: int = 8,
                 kernel_sizes: Sequence[int] = (3, 1), hidden_ratio: float = 1.0,
                 clamp: float = 2.0, cond_channels: int = 0, seed: int = 0,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        kernel_sizes = tuple(kernel_sizes)
        self.blocks = nn.ModuleList(
            AffineCouplingBlock(channels, cond_channels, kernel_sizes[i % len(kernel_sizes)],
                                hidden_ratio, clamp, seed + i)
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor, cond: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> ``(z, log_det)``: z (B, C, H, W), log_det (B,)."""
        log_det = x.new_zeros(x.shape[0])
        for block in self.blocks:
            x, ld = block(x, cond)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor, cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z (B, C, H, W) -> x (B, C, H, W), the exact inverse."""
        for block in reversed(self.blocks):
            z = block.inverse(z, cond)
        return z


def flow_nll(z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``x`` under a flow to a standard normal, per
    sample, without the constant ``D/2 log(2 pi)``.

    Args:
        z: (B, ...) the flow's output.
        log_det: (B,) log|det dz/dx|.

    Returns:
        (B,) ``0.5 * ||z||^2 - log_det``.
    """
    return 0.5 * z.flatten(1).pow(2).sum(1) - log_det


def mean_log_likelihood(z: torch.Tensor) -> torch.Tensor:
    """Per-position log-density of z under a standard normal, averaged over
    channels, without the constant: (B, C, H, W) -> (B, 1, H, W), ``-0.5 *
    mean_c z^2`` (FastFlow's and CFLOW-AD's map before the exponential)."""
    return -0.5 * z.pow(2).mean(1, keepdim=True)


@MODELS.register_module()
class PositionalEncoding2D(nn.Module):
    """Sinusoidal 2-D positional encoding (CFLOW-AD's condition).

    Half of the channels encode the column, half the row, each as
    ``sin(pos * w_k), cos(pos * w_k)`` with ``w_k = 10000^(-2k / (D/2))``
    (the Transformer encoding per axis).

    Args:
        channels: D, divisible by 4.
    """

    def __init__(self, channels: int = 128):
        super().__init__()
        if channels % 4:
            raise ValueError(f'channels must be divisible by 4, got {channels}')
        self.channels = int(channels)

    def forward(self, height: int, width: int, device=None) -> torch.Tensor:
        """Returns:
            (D, height, width): channels ``[0, D/2)`` vary along the columns,
            ``[D/2, D)`` along the rows.
        """
        half = self.channels // 2
        freq = torch.exp(torch.arange(0, half, 2, dtype=torch.float32, device=device)
                         * (-math.log(10000.0) / half))  # (D/4,)
        xs = torch.arange(width, dtype=torch.float32, device=device)[:, None] * freq  # (W, D/4)
        ys = torch.arange(height, dtype=torch.float32, device=device)[:, None] * freq  # (H, D/4)
        pe = torch.empty(self.channels, height, width, device=device)
        pe[0:half:2] = torch.sin(xs).t()[:, None, :].expand(-1, height, -1)
        pe[1:half:2] = torch.cos(xs).t()[:, None, :].expand(-1, height, -1)
        pe[half::2] = torch.sin(ys).t()[:, :, None].expand(-1, -1, width)
        pe[half + 1::2] = torch.cos(ys).t()[:, :, None].expand(-1, -1, width)
        return pe
