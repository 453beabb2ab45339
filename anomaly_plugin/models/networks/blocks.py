"""The convolution block every trainable network is built from."""
from typing import Optional, Tuple, Union

from torch import nn


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``'batch'`` (BatchNorm), ``'layer'`` (GroupNorm with one group,
    batch-independent, as WGAN-GP critics need) or ``'none'`` (identity)."""
    if kind == 'batch':
        return nn.BatchNorm2d(channels)
    if kind == 'layer':
        return nn.GroupNorm(1, channels)
    if kind == 'none':
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


def act_layer(kind: str) -> nn.Module:
    """``'leaky_relu'`` (slope 0.2), ``'relu'`` or ``'none'`` (identity)."""
    if kind == 'leaky_relu':
        return nn.LeakyReLU(0.2, inplace=True)
    if kind == 'relu':
        return nn.ReLU(inplace=True)
    if kind == 'none':
        return nn.Identity()
    raise ValueError(f"act must be 'leaky_relu', 'relu' or 'none', got {kind!r}")


def conv_norm_act(cin: int, cout: int, kernel_size: Union[int, Tuple[int, int]] = 3,
                  stride: int = 1,
                  padding: Optional[int] = None, transposed: bool = False,
                  norm: str = 'batch', act: str = 'leaky_relu',
                  bias: Optional[bool] = None) -> nn.Sequential:
    """Convolution (or transposed convolution), normalisation, activation.

    Always three modules (an absent norm or activation is an identity), so
    state-dict keys are ``<name>.0`` (conv) and ``<name>.1`` (norm) whatever
    the options. A 3x3 stride-1 block keeps the size, a 4x4 stride-2 block
    halves it (``transposed``: doubles it).

    Args:
        cin, cout: input and output channels.
        kernel_size: kernel side (or (h, w), with an explicit ``padding``).
        stride: stride.
        padding: ``(kernel_size - 1) // 2`` when None.
        transposed: a transposed convolution instead of a convolution.
        norm: see :func:`norm_layer`.
        act: see :func:`act_layer`.
        bias: conv bias; by default only without a normalisation.

    Returns:
        ``nn.Sequential(conv, norm, act)``: (B, cin, H, W) -> (B, cout, H', W').
    """
    padding = (kernel_size - 1) // 2 if padding is None else padding
    bias = norm == 'none' if bias is None else bias
    conv = nn.ConvTranspose2d if transposed else nn.Conv2d
    return nn.Sequential(conv(cin, cout, kernel_size, stride, padding, bias=bias),
                         norm_layer(norm, cout), act_layer(act))
