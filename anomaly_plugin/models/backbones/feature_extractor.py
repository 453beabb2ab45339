"""Frozen multi-layer CNN features as patch embeddings (PatchCore / PaDiM)."""
import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from anomaly_plugin.registry import MODELS


def _build_backbone(cfg: dict) -> nn.Module:
    if isinstance(cfg.get('type'), str) and cfg['type'].startswith('mmpretrain.'):
        import mmpretrain.models  # noqa: F401  (fills mmpretrain's registry)
    return MODELS.build(cfg)


@MODELS.register_module()
class FeatureExtractor(nn.Module):
    """Frozen backbone -> local aggregation -> resize -> concatenation.

    Each chosen layer's map is averaged over a ``pool_size`` x ``pool_size``
    neighbourhood (stride 1, PatchCore's local patch aggregation), resized
    bilinearly to the first (finest) layer's size and concatenated.

    Args:
        backbone: config of any mmpretrain backbone returning a tuple of
            maps for its ``out_indices``, e.g.
            ``dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4))``.
        pool_size: neighbourhood size of the average (1 = off).
        upsample: interpolation of the coarser layers, ``'bilinear'`` or
            ``'nearest'``.
        num_channels: keep a random subset of this many concatenated
            channels (PaDiM's random dimensionality reduction); None keeps all.
        channel_seed: seed of that subset.
        fast_inference: run a copy of the frozen backbone with BatchNorm
            folded into the convolutions, in channels-last memory format
            (same outputs up to float rounding, several times faster on CPU).
            The copy is rebuilt whenever the weights or the device change.

    Output: (B, C, h, w) with h, w of the first chosen layer.
    """

    def __init__(self, backbone: dict, pool_size: int = 3, upsample: str = 'bilinear',
                 num_channels: Optional[int] = None, channel_seed: int = 0,
                 fast_inference: bool = True):
        super().__init__()
        self.fast_inference = fast_inference
        self._fast = None  # plain attribute: not a submodule, not in the state dict
        if upsample not in ('bilinear', 'nearest'):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {upsample!r}")
        self.backbone = _build_backbone(backbone)
        self._truncate()
        self.pool_size = int(pool_size)
        self.upsample = upsample
        self.freeze()
        self.register_buffer('channel_indices', None)
        if num_channels is not None:
            total = self.out_channels()
            if not 0 < num_channels <= total:
                raise ValueError(f'num_channels must be in 1..{total}, got {num_channels}')
            gen = torch.Generator().manual_seed(channel_seed)
            idx = torch.randperm(total, generator=gen)[:num_channels].sort().values
            self.channel_indices = idx

    @torch.no_grad()
    def out_channels(self) -> int:
        """Channels of the concatenated embedding (one small dry run)."""
        probe = next(self.backbone.parameters())
        x = torch.zeros(1, 3, 64, 64, dtype=probe.dtype, device=probe.device)
        feats = self.backbone(x)
        feats = (feats,) if isinstance(feats, torch.Tensor) else feats
        return sum(f.shape[1] for f in feats)

    def _truncate(self) -> None:
        """Skip the stages after the last chosen one (never computed).

        mmpretrain's MobileNetV2 (``layers``) and ResNet (``res_layers``) run
        the stages named in a list; shortening the list keeps every weight
        (checkpoints stay compatible) but stops the forward pass early.
        """
        out_indices = getattr(self.backbone, 'out_indices', None)
        if not out_indices:
            return
        last = max(out_indices)
        for attr in ('layers', 'res_layers'):
            names = getattr(self.backbone, attr, None)
            if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
                setattr(self.backbone, attr, names[:last + 1])

    def freeze(self) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> 'FeatureExtractor':
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics never update
        return self

    def init_weights(self) -> None:
        if hasattr(self.backbone, 'init_weights'):
            self.backbone.init_weights()
        self.freeze()
        self._fast = None

    def _load_from_state_dict(self, *args, **kwargs):
        self._fast = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._fast = None
        return super()._apply(fn, *args, **kwargs)

    def _run_backbone(self, x: torch.Tensor):
        if not self.fast_inference:
            return self.backbone(x)
        if self._fast is None:
            from mmcv.cnn import fuse_conv_bn
            fast = fuse_conv_bn(copy.deepcopy(self.backbone))
            fast.eval()  # mmpretrain backbones' train() returns None
            for p in fast.parameters():  # frozen, as the backbone
                p.requires_grad_(False)
            # object.__setattr__: keep the copy out of the module tree
            object.__setattr__(self, '_fast', fast.to(memory_format=torch.channels_last))
        return self._fast(x.contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._run_backbone(x)
        if isinstance(feats, torch.Tensor):
            feats = (feats,)
        if self.pool_size > 1:
            p = self.pool_size
            feats = [F.avg_pool2d(f, p, 1, p // 2) for f in feats]
        size = feats[0].shape[-2:]
        align = False if self.upsample == 'bilinear' else None
        feats = [f if f.shape[-2:] == size else
                 F.interpolate(f, size=size, mode=self.upsample, align_corners=align)
                 for f in feats]
        emb = torch.cat(feats, 1)  # (B, C, h, w)
        if self.channel_indices is not None:
            emb = emb.index_select(1, self.channel_indices)
        return emb
