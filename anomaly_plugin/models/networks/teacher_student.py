"""Teacher-student parts: the frozen-teacher / trainable-student pair, and
Reverse Distillation's one-class bottleneck and reverse decoder."""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from ..backbones.feature_extractor import build_backbone
from .blocks import conv_norm_act


@MODELS.register_module()
class TeacherStudent(BaseModule):
    """A frozen pretrained teacher and a trainable student of the same shape.

    The teacher is a :class:`FeatureExtractor` (weights frozen, BatchNorm
    statistics never updated, in train mode too); the student is a backbone
    returning one map per teacher level, trained from scratch.

    Args:
        teacher: config of a ``FeatureExtractor`` (``pool_size=1``: its
            ``levels`` are the targets), e.g. MobileNetV2 with
            ``out_indices=(1, 2, 4)`` and ImageNet weights.
        student: config of the student backbone; None: the teacher's backbone
            config without its weights (``init_cfg=None``), i.e. the same
            architecture from scratch, STFPM's choice. Any backbone config
            whose outputs match the teacher's levels in channels and size
            works (an mmdet / mmseg backbone with a scoped type included).
        channels_last: keep the student's weights, and run its input, in
            channels-last memory format (the same float32 arithmetic in
            another layout; convolutions train markedly faster so on CPUs).
            Its maps come out channels-last too. A random initialisation
            fills the weights in memory order, so the same seed draws the
            same values in another arrangement than without it.
        init_cfg: MMEngine initialisation config of this module.
    """

    def __init__(self, teacher: dict, student: Optional[dict] = None,
                 channels_last: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.teacher = MODELS.build(teacher)
        if student is None:
            student = dict(copy.deepcopy(teacher['backbone']), init_cfg=None)
        # stages after the last level are deleted: they would never get a gradient
        self.student = build_backbone(student, drop_skipped=True)
        self.channels_last = channels_last
        if channels_last:  # before any optimiser or DDP wrapper sees the weights
            self.student.to(memory_format=torch.channels_last)

    def student_levels(self, x: torch.Tensor) -> List[torch.Tensor]:
        """(B, 3, H, W) -> the student's maps, one per teacher level."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.student(x)
        return [feats] if isinstance(feats, torch.Tensor) else list(feats)

    def forward(self, x: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Args:
            x: (B, 3, H, W) normalised images.

        Returns:
            ``(teacher_levels, student_levels)``: lists of (B, C_l, h_l, w_l),
            the teacher's without gradient.
        """
        return self.teacher.levels(x), self.student_levels(x)


def _residual_block(channels: int) -> nn.Module:
    return _Residual(channels, channels, stride=1)


class _Residual(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the (projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv_norm_act(cin, cout, 3, stride, act='relu'),
                                  conv_norm_act(cout, cout, 3, 1, act='none'))
        self.shortcut = (nn.Identity() if cin == cout and stride == 1 else
                         conv_norm_act(cin, cout, 1, stride, padding=0, act='none'))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


@MODELS.register_module()
class OneClassBottleneck(BaseModule):
    """Reverse Distillation's one-class bottleneck embedding (OCBE).

    Multi-scale feature fusion: each teacher level is brought to the
    coarsest level's size by stride-2 3x3 conv-BN-ReLU blocks (one per
    halving, to the coarsest level's channels), the levels are concatenated
    and fused by a 1x1 conv-BN-ReLU; the one-class embedding is a stride-2
    residual block to ``out_channels``: a code at half the coarsest level's
    resolution. Levels must halve in size from one to the next (backbone
    stages of strides 4, 8, 16 or similar).

    Args:
        in_channels: channels of the teacher levels, finest first.
        out_channels: channels of the code.
        num_blocks: residual blocks of the embedding (the first strided).
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_blocks: int = 1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        in_channels = list(in_channels)
        last = len(in_channels) - 1
        c = in_channels[-1]
        self.align = nn.ModuleList(
            nn.Sequential(*[conv_norm_act(ch if k == 0 else c, c, 3, 2, act='relu')
                            for k in range(last - i)])
            for i, ch in enumerate(in_channels))
        self.fuse = conv_norm_act(c * len(in_channels), c, 1, padding=0, act='relu')
        self.embed = nn.Sequential(_Residual(c, out_channels, stride=2),
                                   *[_residual_block(out_channels) for _ in range(num_blocks - 1)])

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Teacher levels [(B, C_l, h_l, w_l)], finest first -> code
        (B, out_channels, h_L / 2, w_L / 2)."""
        size = levels[-1].shape[-2:]
        aligned = []
        for f, align in zip(levels, self.align):
            a = align(f)
            if a.shape[-2:] != size:  # odd sizes: strided convs round up
                a = F.interpolate(a, size=size, mode='bilinear', align_corners=False)
            aligned.append(a)
        return self.embed(self.fuse(torch.cat(aligned, 1)))


@MODELS.register_module()
class ReverseDecoder(BaseModule):
    """Reverse Distillation's student: decodes the one-class code back to the
    teacher's levels, coarsest first.

    Per level (coarsest to finest): a 2x2 stride-2 transposed conv-BN-ReLU
    to the level's channels, a residual block, and a 1x1 convolution that
    outputs the level's prediction. The 1x1 output is linear because a
    teacher level need not be non-negative (MobileNetV2's stages end without
    an activation); the paper's decoder mirrors a ResNet whose stage outputs
    are post-ReLU. This adaptation is the project's own.

    Args:
        in_channels: channels of the code.
        out_channels: channels of the teacher levels, finest first.
        num_blocks: residual blocks per level.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: Sequence[int], num_blocks: int = 1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        chans = list(out_channels)[::-1]  # coarsest first
        prev = [in_channels] + chans[:-1]
        self.ups = nn.ModuleList(conv_norm_act(p, c, 2, 2, padding=0, transposed=True,
                                               act='relu') for p, c in zip(prev, chans))
        self.blocks = nn.ModuleList(nn.Sequential(*[_residual_block(c) for _ in range(num_blocks)])
                                    for c in chans)
        self.heads = nn.ModuleList(nn.Conv2d(c, c, 1) for c in chans)

    def forward(self, code: torch.Tensor,
                sizes: Optional[Sequence[Sequence[int]]] = None) -> List[torch.Tensor]:
        """Args:
            code: (B, C, h, w) from the bottleneck.
            sizes: (h_l, w_l) of the teacher levels, finest first, when a
                level is not exactly twice the next (odd input sizes).

        Returns:
            Predicted levels [(B, C_l, h_l, w_l)], finest first.
        """
        outs = []
        x = code
        targets = list(sizes)[::-1] if sizes is not None else [None] * len(self.ups)
        for up, block, head, size in zip(self.ups, self.blocks, self.heads, targets):
            x = up(x)
            if size is not None and tuple(x.shape[-2:]) != tuple(size):
                x = F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)
            x = block(x)
            outs.append(head(x))
        return outs[::-1]
