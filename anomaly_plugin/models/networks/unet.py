"""The plugin's one U-Net: RIAD's inpainting network, the skip-connected
autoencoder's network and Skip-GANomaly's pix2pix generator are configurations
of :class:`UNet`."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .blocks import act_layer, conv_norm_act
from .dcgan import dcgan_init


def _flat(blocks: List[nn.Sequential]) -> nn.Module:
    """Conv blocks as one flat ``nn.Sequential`` (keys 0, 1, 3, 4, ...); an
    identity when there are none."""
    return nn.Sequential(*[m for b in blocks for m in b]) if blocks else nn.Identity()


@MODELS.register_module()
class UNet(BaseModule):
    """Encoder-decoder with skip connections (Ronneberger et al. 2015), configurable.

    Encoder, ``len(channels)`` levels, fine to coarse. ``down='pool'``: level 0
    at the input resolution and a 2x2 max-pool before every further level;
    each level is ``level_convs`` conv blocks. ``down='stride'``: every level
    starts with a stride-2 conv of ``down_kernel`` (level ``i`` at
    ``1 / 2^(i+1)`` of the input) followed by ``level_convs - 1`` conv blocks.
    With ``outer_norm=False`` the first and the innermost level have no
    normalisation (pix2pix).

    Decoder, from the innermost level outwards: the features are brought to
    the next level's size (``up='transposed'``: a stride-2 transposed conv of
    ``up_kernel`` to that level's channels, followed by BatchNorm and
    ``up_act`` when ``up_norm``, then resized bilinearly if odd sizes made
    them differ; ``'bilinear'``: resized bilinearly), merged with that level's
    encoder features (``merge='concat'``: concatenated, ``[skip, up]`` with
    ``skip_first`` else ``[up, skip]``, then ``merge_convs`` conv blocks, none
    meaning the concatenation goes on as it is; ``'add'``: ``merge_convs``
    conv blocks to the level's channels, then the features are added).

    Head: with ``down='stride'`` the last merge is at half the input
    resolution: ``up='transposed'`` makes the output by a stride-2 transposed
    conv, ``'bilinear'`` resizes to the input first. Otherwise
    ``head_convs`` conv blocks and an ``out_kernel`` conv give
    ``out_channels``, then ``out_act``.

    Conv blocks are :func:`conv_norm_act` (``kernel_size``, BatchNorm,
    ``act``). The plugin's three networks (see their configs):

    - RIAD (Ronneberger's U-Net): the defaults (pool, two 3x3 ReLU blocks per
      level, 2x2 transposed convs, concatenation, a 1x1 conv and a sigmoid).
    - Skip-connected autoencoder (Collin and De Vleeschouwer): ``down='stride',
      level_convs=1, act='leaky_relu', up='bilinear', merge_convs=1,
      skip_first=False, head_convs=1, out_kernel=kernel_size`` (``merge='add'``
      for the authors' additive skips).
    - Skip-GANomaly (pix2pix): ``down='stride', down_kernel=4, level_convs=1,
      act='leaky_relu', outer_norm=False, up_kernel=4, up_norm=True,
      merge_convs=0, skip_first=False, init='dcgan'``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        channels: channels of each level, fine to coarse.
        down: ``'pool'`` or ``'stride'``.
        kernel_size: odd kernel of the stride-1 conv blocks.
        down_kernel: kernel of the stride-2 convs; ``kernel_size`` when None.
        level_convs: conv blocks per encoder level (the stride-2 one included).
        up: ``'transposed'`` or ``'bilinear'``.
        up_kernel: kernel of the transposed convs.
        up_norm: BatchNorm and ``up_act`` after each transposed conv.
        merge: ``'concat'`` or ``'add'``.
        merge_convs: conv blocks after (``'add'``: before) each merge.
        skip_first: concatenation order.
        act: activation of the conv blocks (``'relu'``, ``'leaky_relu'``).
        up_act: activation after the transposed convs when ``up_norm``.
        outer_norm: normalise the first and the innermost level.
        head_convs: conv blocks before the output conv.
        out_kernel: kernel of the output conv.
        out_act: ``'sigmoid'`` (an image in [0, 1]) or ``'none'``.
        init: ``'default'`` (PyTorch's) or ``'dcgan'`` (:func:`dcgan_init`).
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after ``init`` (e.g. ``dict(type='Pretrained',
            checkpoint=PATH, prefix='inpainter.')``); None keeps it.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3,
                 channels: Sequence[int] = (64, 128, 256, 512, 1024), down: str = 'pool',
                 kernel_size: int = 3, down_kernel: Optional[int] = None, level_convs: int = 2,
                 up: str = 'transposed', up_kernel: int = 2, up_norm: bool = False,
                 merge: str = 'concat', merge_convs: int = 2, skip_first: bool = True,
                 act: str = 'relu', up_act: str = 'relu', outer_norm: bool = True,
                 head_convs: int = 0, out_kernel: int = 1, out_act: str = 'sigmoid',
                 init: str = 'default', init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        c = [int(v) for v in channels]
        self._check(c, down, kernel_size, level_convs, up, merge, merge_convs, head_convs,
                    out_act, init)
        self.down, self.up, self.merge, self.skip_first = down, up, merge, bool(skip_first)
        down_kernel = kernel_size if down_kernel is None else int(down_kernel)
        levels = len(c)

        def block(cin, cout, k=kernel_size, stride=1, norm='batch'):
            return conv_norm_act(cin, cout, k, stride, norm=norm, act=act)

        self.downs = nn.ModuleList()
        cin = in_channels
        for i, ci in enumerate(c):
            norm = 'batch' if outer_norm or i not in (0, levels - 1) else 'none'
            first = block(cin, ci) if down == 'pool' else block(cin, ci, down_kernel, 2, norm)
            self.downs.append(_flat([first] + [block(ci, ci) for _ in range(level_convs - 1)]))
            cin = ci
        # the decoder's channels per step j (level i = levels - 2 - j): in, after the
        # up-step, after the merge
        steps, cin = [], c[-1]
        for i in range(levels - 2, -1, -1):
            up_out = c[i] if up == 'transposed' else cin
            if merge == 'add':
                out = c[i]
            else:
                out = c[i] if merge_convs else up_out + c[i]
            steps.append((cin, up_out, out, i))
            cin = out
        # all up-steps, then all merges (the order the weights are drawn in)
        self.ups = nn.ModuleList()
        for cin_j, _, _, i in steps:
            if up == 'bilinear':
                self.ups.append(nn.Identity())
            elif up_norm:
                self.ups.append(conv_norm_act(cin_j, c[i], up_kernel, 2, transposed=True,
                                              act=up_act))
            else:
                self.ups.append(nn.ConvTranspose2d(cin_j, c[i], up_kernel, 2,
                                                   (up_kernel - 1) // 2))
        self.merges = nn.ModuleList()
        for _, up_out, _, i in steps:
            first = up_out if merge == 'add' else up_out + c[i]
            self.merges.append(_flat([block(first if k == 0 else c[i], c[i])
                                      for k in range(merge_convs)]))
        if down == 'stride' and up == 'transposed':
            self.head = nn.Sequential(
                nn.ConvTranspose2d(cin, out_channels, up_kernel, 2, (up_kernel - 1) // 2),
                act_layer(out_act) if out_act != 'sigmoid' else nn.Sigmoid())
        else:
            layers = [block(cin if k == 0 else c[0], c[0]) for k in range(head_convs)]
            last = c[0] if head_convs else cin
            layers.append(nn.Conv2d(last, out_channels, out_kernel, 1, (out_kernel - 1) // 2))
            layers.append(nn.Sigmoid() if out_act == 'sigmoid' else nn.Identity())
            self.head = nn.Sequential(*layers)
        if init == 'dcgan':
            dcgan_init(self)

    @staticmethod
    def _check(c, down, kernel_size, level_convs, up, merge, merge_convs, head_convs,
               out_act, init) -> None:
        def fail(msg):
            raise ValueError(f'UNet: {msg}')
        if not c or min(c) < 1:
            fail(f'channels must be a non-empty list of positive integers, got {c}')
        if down not in ('pool', 'stride'):
            fail(f"down must be 'pool' or 'stride', got {down!r}")
        if up not in ('transposed', 'bilinear'):
            fail(f"up must be 'transposed' or 'bilinear', got {up!r}")
        if merge not in ('concat', 'add'):
            fail(f"merge must be 'concat' or 'add', got {merge!r}")
        if kernel_size < 1 or kernel_size % 2 != 1:
            fail(f'kernel_size must be odd, got {kernel_size}')
        if level_convs < 1 or merge_convs < 0 or head_convs < 0:
            fail('level_convs must be >= 1, merge_convs and head_convs >= 0')
        if merge == 'add' and merge_convs < 1:
            fail("merge='add' needs merge_convs >= 1 (the convs before the addition)")
        if down == 'stride' and up == 'transposed' and head_convs:
            fail("with down='stride' and up='transposed' the output is a transposed conv: "
                 'head_convs must be 0')
        if out_act not in ('sigmoid', 'none'):
            fail(f"out_act must be 'sigmoid' or 'none', got {out_act!r}")
        if init not in ('default', 'dcgan'):
            fail(f"init must be 'default' or 'dcgan', got {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W)."""
        if self.down == 'stride' and self.up == 'transposed':
            multiple = 2 ** len(self.downs)
            if x.shape[-2] % multiple or x.shape[-1] % multiple:
                raise ValueError(f'UNet: input {x.shape[-2]}x{x.shape[-1]} must be divisible by '
                                 f'2^{len(self.downs)} = {multiple} (strided levels, '
                                 'transposed output conv)')
        feats = []
        y = x
        for i, level in enumerate(self.downs):
            y = level(F.max_pool2d(y, 2) if self.down == 'pool' and i > 0 else y)
            feats.append(y)  # (B, channels[i], H_i, W_i)
        y = feats[-1]
        for j, (up, merge) in enumerate(zip(self.ups, self.merges)):
            skip = feats[-2 - j]
            y = up(y)
            if y.shape[-2:] != skip.shape[-2:] or self.up == 'bilinear':
                y = F.interpolate(y, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            if self.merge == 'add':
                y = merge(y) + skip
            else:
                y = merge(torch.cat([skip, y] if self.skip_first else [y, skip], dim=1))
        if self.down == 'stride' and self.up == 'bilinear':
            y = F.interpolate(y, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return self.head(y)  # (B, out_channels, H, W)
