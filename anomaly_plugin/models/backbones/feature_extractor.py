"""Frozen multi-layer CNN features as patch embeddings (PatchCore / PaDiM)."""
import copy
import importlib
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS

from .weight_conversion import load_prefixed_weights

#: OpenMMLab packages whose backbones a scoped type names (``'mmdet.ResNet'``):
#: scope -> how to install it (mmdet's models import ``mmcv.ops``)
BACKBONE_PACKAGES = {
    'mmpretrain': 'pip install mmpretrain==1.2.0',
    'mmdet': 'pip install mmdet==3.3.0 and a compiled mmcv, see README',
    'mmseg': 'pip install mmsegmentation==1.2.2, see README',
}


class BackboneImportError(ImportError):
    """The package that registers a backbone type cannot be imported."""


def import_backbone_scope(type_name: str) -> None:
    """Import the models of the package a scoped backbone type comes from.

    Fills that package's registry, so ``MODELS.build`` finds
    ``'mmdet.ResNet'``, ``'mmseg.MixVisionTransformer'``, ... Types without
    a scope, or with another scope, are left to the registry.

    Args:
        type_name: the backbone config's ``type``.

    Raises:
        BackboneImportError: the package is not installed, or importing its
            models needs the compiled ops of the full ``mmcv`` (``mmcv.ops``)
            and only ``mmcv-lite`` is there; the message names what to install.
    """
    scope = type_name.split('.', 1)[0] if '.' in type_name else None
    if scope not in BACKBONE_PACKAGES:
        return
    install = BACKBONE_PACKAGES[scope]
    try:
        importlib.import_module(f'{scope}.models')
    except ModuleNotFoundError as err:
        if err.name and err.name.split('.')[0] == scope:
            raise BackboneImportError(
                f'type={type_name!r} needs {scope} ({install}); it is not installed') from err
        if err.name and err.name.startswith('mmcv'):
            raise BackboneImportError(
                f'type={type_name!r} needs a compiled mmcv: importing {scope}.models imports '
                f'mmcv.ops ({err}), which mmcv-lite does not have. Install mmcv built for '
                'your torch and CUDA versions (see README)') from err
        if err.name:
            raise BackboneImportError(
                f'type={type_name!r}: importing {scope}.models needs the module {err.name!r}, '
                f'which is not installed (pip install {err.name.split(".")[0]}'
                + (' regex; mmseg 1.2 imports both' if scope == 'mmseg' else '') + ')') from err
        raise


def truncate_backbone(backbone: nn.Module, drop: bool = False) -> None:
    """Skip the stages after the last chosen one (never computed).

    mmpretrain's MobileNetV2 (``layers``) and ResNet (``res_layers``) run the
    stages named in a list; shortening the list stops the forward pass early.

    Args:
        backbone: the backbone, changed in place.
        drop: also delete the skipped stages (a network trained from scratch:
            parameters that never get a gradient stall distributed
            training); by default they are kept, so pretrained checkpoints
            stay compatible.
    """
    out_indices = getattr(backbone, 'out_indices', None)
    if not out_indices:
        return
    last = max(out_indices)
    for attr in ('layers', 'res_layers'):
        names = getattr(backbone, attr, None)
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            setattr(backbone, attr, names[:last + 1])
            if drop:
                for name in names[last + 1:]:
                    if isinstance(getattr(backbone, name, None), nn.Module):
                        delattr(backbone, name)


def build_backbone(cfg: dict, drop_skipped: bool = False) -> nn.Module:
    """Build a backbone from a (possibly scoped) config, importing its
    package first, and skip the stages after its last output (deleting them
    with ``drop_skipped``, see :func:`truncate_backbone`)."""
    if isinstance(cfg.get('type'), str):
        import_backbone_scope(cfg['type'])
    backbone = MODELS.build(cfg)
    truncate_backbone(backbone, drop=drop_skipped)
    return backbone


def _prefixed_pretrained(cfg: dict) -> Optional[Tuple[str, str]]:
    """``(checkpoint, prefix)`` of a ``Pretrained`` init_cfg with a prefix, else None."""
    init = cfg.get('init_cfg')
    if not isinstance(init, dict) or not init.get('prefix'):
        return None
    kind = init.get('type')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    if kind.split('.')[-1] not in ('Pretrained', 'PretrainedInit'):
        return None
    return init['checkpoint'], init['prefix']


@MODELS.register_module()
class FeatureExtractor(BaseModule):
    """Frozen backbone -> local aggregation -> resize -> concatenation.

    Each chosen layer's map is averaged over a ``pool_size`` x ``pool_size``
    neighbourhood (stride 1, PatchCore's local patch aggregation), resized
    bilinearly to the first (finest) layer's size and concatenated.

    Backbones come from any registry the scoped type names, its package
    imported on first use: ``'mmpretrain.MobileNetV2'``, ``'mmpretrain.ResNet'``,
    ``'mmdet.ResNet'``, ``'mmdet.CSPDarknet'``, ``'mmseg.MixVisionTransformer'``, ...
    Packages and ``mmcv``:

    * ``mmpretrain`` 1.2.0 never imports ``mmcv.ops``: all its backbones work
      with ``mmcv-lite``.
    * ``mmdet`` 3.3.0: ``import mmdet.models`` (which registers any mmdet
      backbone, and runs first when any ``mmdet.models.*`` module is
      imported) imports its layers, dense heads and detectors, and
      ``mmdet/models/layers/bbox_nms.py`` imports ``mmcv.ops``; so every
      ``mmdet.*`` backbone, ``mmdet.ResNet`` included, needs the compiled
      ``mmcv``, not ``mmcv-lite``.
    * ``mmseg`` 1.2.2: ``import mmseg.models`` imports ``mmseg.utils``,
      whose ``mask_classification.py`` imports ``mmcv.ops``; so every
      ``mmseg.*`` backbone needs the compiled ``mmcv`` too (and ``ftfy`` and
      ``regex``, which its multimodal models import and its wheel does not
      install).

    A missing package (or missing compiled ops) raises
    :class:`BackboneImportError` naming what to install.

    Weights from a detector's or segmentor's full-model checkpoint: give the
    backbone ``init_cfg=dict(type='Pretrained', checkpoint=PATH,
    prefix='backbone.')`` (or ``checkpoint=PATH`` here). Such an init_cfg is
    taken over by this class: :meth:`init_weights` loads the ``backbone.``
    entries (of the file's ``state_dict``, its ``model``, or the plain dict)
    weights-only and strictly, and raises a
    :class:`~.weight_conversion.WeightConversionError` naming the file when
    no key has the prefix or keys or shapes do not fit (MMEngine's own
    ``PretrainedInit`` would load it non-strictly). A ``Pretrained``
    init_cfg without prefix is left to MMEngine, as before.

    Args:
        backbone: config of a backbone returning a tensor or a tuple of
            maps for its ``out_indices``, e.g.
            ``dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4))`` or
            ``dict(type='mmdet.ResNet', depth=50, out_indices=(1, 2))``.
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
        checkpoint: a full-model checkpoint whose ``checkpoint_prefix``
            entries :meth:`init_weights` loads into the backbone (None: none).
        checkpoint_prefix: key prefix of the backbone in ``checkpoint``.
        init_cfg: MMEngine initialisation config(s) of this module, applied by
            :meth:`init_weights` after the backbone's own init_cfg and
            ``checkpoint``, e.g. ``dict(type='Pretrained', checkpoint=PATH,
            prefix='backbone.')`` to take the whole extractor (backbone and
            channel subset) from a fitted PatchCore / PaDiM checkpoint. None:
            nothing more (the backbone's weights come from its own config).

    Output: (B, C, h, w) with h, w of the first chosen layer.
    """

    def __init__(self, backbone: dict, pool_size: int = 3, upsample: str = 'bilinear',
                 num_channels: Optional[int] = None, channel_seed: int = 0,
                 fast_inference: bool = True, checkpoint: Optional[str] = None,
                 checkpoint_prefix: str = 'backbone.',
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        prefixed = _prefixed_pretrained(backbone)
        if prefixed is not None:
            if checkpoint is not None:
                raise ValueError('give the backbone checkpoint either as checkpoint= or as a '
                                 "Pretrained init_cfg with a prefix, not both")
            checkpoint, checkpoint_prefix = prefixed
            backbone = dict(copy.deepcopy(backbone), init_cfg=None)
        self.checkpoint = checkpoint
        self.checkpoint_prefix = checkpoint_prefix
        self.fast_inference = fast_inference
        self._fast = None  # plain attribute: not a submodule, not in the state dict
        if upsample not in ('bilinear', 'nearest'):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {upsample!r}")
        self.backbone = build_backbone(backbone)
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

    def freeze(self) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> 'FeatureExtractor':
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics never update
        return self

    def init_weights(self) -> None:
        """The backbone's own init_cfg, then the ``checkpoint`` entries (strict),
        then this module's ``init_cfg`` (when given); the backbone stays frozen."""
        if hasattr(self.backbone, 'init_weights'):
            self.backbone.init_weights()
        if self.checkpoint is not None:
            load_prefixed_weights(self.backbone, self.checkpoint, self.checkpoint_prefix)
        if self.init_cfg:
            # MMEngine applies init_cfg and skips the backbone, initialised above
            super().init_weights()
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
    def levels(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The chosen layers' maps, each averaged over its neighbourhood, not
        resized (teacher features of the feature-level models).

        Args:
            x: (B, 3, H, W) normalised images.

        Returns:
            One (B, C_l, h_l, w_l) map per chosen layer, finest first.
        """
        feats = self._run_backbone(x)
        if isinstance(feats, torch.Tensor):
            feats = (feats,)
        if self.pool_size > 1:
            p = self.pool_size
            feats = [F.avg_pool2d(f, p, 1, p // 2) for f in feats]
        return list(feats)

    @torch.no_grad()
    def level_channels(self) -> List[int]:
        """Channels of each chosen layer (one small dry run)."""
        probe = next(self.backbone.parameters())
        x = torch.zeros(1, 3, 64, 64, dtype=probe.dtype, device=probe.device)
        return [f.shape[1] for f in self.levels(x)]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.levels(x)
        size = feats[0].shape[-2:]
        align = False if self.upsample == 'bilinear' else None
        feats = [f if f.shape[-2:] == size else
                 F.interpolate(f, size=size, mode=self.upsample, align_corners=align)
                 for f in feats]
        emb = torch.cat(feats, 1)  # (B, C, h, w)
        if self.channel_indices is not None:
            emb = emb.index_select(1, self.channel_indices)
        return emb
