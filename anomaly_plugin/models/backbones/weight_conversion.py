"""Convert torchvision ImageNet checkpoints for mmpretrain backbones.

torchvision's checkpoints name their parameters differently from
mmpretrain's backbones:

* :func:`convert_mobilenet_v2`: torchvision ``mobilenet_v2`` ->
  ``mmpretrain.MobileNetV2`` (renamed block by block);
* :func:`convert_resnet`: torchvision ``resnet*`` / ``wide_resnet*`` ->
  ``mmpretrain.ResNet`` (same names, the ``fc`` head dropped).

Both return backbone-only state dicts, checked key by key and shape by shape
against the mmpretrain backbone they are meant for, so a config can load them
with ``init_cfg=dict(type='Pretrained', checkpoint=...)`` on the backbone.

:func:`load_prefixed_weights` loads the backbone part of a detector's or
segmentor's full-model checkpoint (the ``backbone.`` entries) strictly.
"""
import os
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Union

import torch

PathLike = Union[str, os.PathLike]
StateDict = Mapping[str, torch.Tensor]


class WeightConversionError(ValueError):
    """A state dict does not fit the backbone it is converted for."""


def load_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Load a plain state dict (weights-only unpickling, the package's one
    loader: :func:`anomaly_plugin.engine.checkpoint.safe_load`).

    Accepts a bare state dict or a dict holding one under ``state_dict``.

    Raises:
        WeightConversionError: the file holds no mapping of tensors.
    """
    from anomaly_plugin.engine.checkpoint import safe_load  # no import cycle at load time
    obj = safe_load(os.fspath(path), map_location='cpu')
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor)
                                               for v in obj.values()):
        raise WeightConversionError(f'{path}: not a state dict of tensors')
    return dict(obj)


def load_prefixed_state_dict(path: PathLike, prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """The entries of a full-model checkpoint under ``prefix``, prefix stripped.

    The file is read with the plugin's weights-only loader
    (:func:`anomaly_plugin.engine.checkpoint.safe_load`). The state dict is
    the file's ``state_dict`` entry (MMEngine checkpoints: mmdet, mmseg,
    mmpretrain), its ``model`` entry (e.g. detectron2 / DETR style), or the
    file itself when it is a plain state dict.

    Args:
        path: the checkpoint file.
        prefix: key prefix of the sub-module, e.g. ``'backbone.'`` (a missing
            final dot is added).

    Returns:
        sub-module key -> tensor, e.g. ``backbone.conv1.weight`` ->
        ``conv1.weight``.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file holds pickled objects that are not
            plain data.
        WeightConversionError: no state dict in the file, or no key has the
            prefix (the message lists the prefixes it does have).
    """
    from anomaly_plugin.engine.checkpoint import safe_load  # no import cycle at load time

    prefix = prefix if prefix.endswith('.') else prefix + '.'
    obj = safe_load(os.fspath(path), map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightConversionError(
            f'{path}: no state dict found (expected a mapping of names to tensors, '
            "or one under 'state_dict' or 'model')")
    state = {k[len(prefix):]: v for k, v in obj.items()
             if isinstance(k, str) and k.startswith(prefix)}
    if not state:
        heads = sorted({str(k).split('.', 1)[0] + '.' for k in obj})
        raise WeightConversionError(
            f'{path}: no key starts with {prefix!r}, so it holds no weights for this '
            f'backbone; its keys start with {_preview(heads)}')
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightConversionError(f'{path}: entries that are not tensors {_preview(bad)}')
    return state


def load_prefixed_weights(module: torch.nn.Module, path: PathLike,
                          prefix: str = 'backbone.') -> None:
    """Load the ``prefix`` entries of a full-model checkpoint into ``module``, strictly.

    Args:
        module: e.g. a backbone built like the detector's one.
        path: the full-model checkpoint (see :func:`load_prefixed_state_dict`).
        prefix: key prefix of the sub-module in the checkpoint.

    Raises:
        WeightConversionError: the file has no such entries, or they do not
            fit ``module``: missing / unexpected keys, shape mismatches (all
            listed, with the file name).
        FileNotFoundError, UnsafeCheckpointError: see
            :func:`load_prefixed_state_dict`.
    """
    state = load_prefixed_state_dict(path, prefix)
    reference = module.state_dict()
    problems = []
    missing = [k for k in reference if k not in state]
    if missing:
        problems.append(f'missing keys {_preview(missing)}')
    unexpected = [k for k in state if k not in reference]
    if unexpected:
        problems.append(f'unexpected keys {_preview(unexpected)}')
    bad = [f'{k} {tuple(state[k].shape)} vs {tuple(ref.shape)}'
           for k, ref in reference.items() if k in state and state[k].shape != ref.shape]
    if bad:
        problems.append(f'shape mismatches (checkpoint vs model) {_preview(bad)}')
    if problems:
        raise WeightConversionError(
            f'{path}: the {prefix!r} weights do not fit {type(module).__name__} (is the '
            'backbone config the one the checkpoint was trained with?): ' + '; '.join(problems))
    module.load_state_dict(state, strict=True)


def _rename_and_check(src: StateDict, module_map: Mapping[str, str],
                      reference: StateDict, drop: Iterable[str],
                      what: str) -> 'OrderedDict[str, torch.Tensor]':
    """Rename ``src`` keys module by module and check them against ``reference``.

    Args:
        src: source state dict.
        module_map: source module prefix -> target module prefix (the part of
            a key before the last dot, e.g. ``features.0.0`` -> ``conv1.conv``).
        reference: state dict of the target model; fixes keys, shapes, order.
        drop: source key prefixes to leave out (classification heads).
        what: name of the conversion, for error messages.

    Returns:
        the renamed state dict, in the order of ``reference``.

    Raises:
        WeightConversionError: unknown source keys, missing target keys or
            shape mismatches (all of them listed).
    """
    drop = tuple(drop)
    renamed, unknown = {}, []
    for key, value in src.items():
        if drop and key.startswith(drop):
            continue
        module, _, param = key.rpartition('.')
        target = module_map.get(module)
        if target is None:
            unknown.append(key)
            continue
        renamed[f'{target}.{param}'] = (key, value)

    problems = []
    if unknown:
        problems.append(f'unexpected keys {_preview(unknown)}')
    missing = [k for k in reference if k not in renamed]
    if missing:
        problems.append(f'missing keys {_preview(missing)}')
    extra = [f'{renamed[k][0]} -> {k}' for k in renamed if k not in reference]
    if extra:
        problems.append(f'keys with no place in the target {_preview(extra)}')
    bad = [f'{renamed[k][0]} {tuple(renamed[k][1].shape)} -> {k} {tuple(ref.shape)}'
           for k, ref in reference.items()
           if k in renamed and renamed[k][1].shape != ref.shape]
    if bad:
        problems.append(f'shape mismatches {_preview(bad)}')
    if problems:
        raise WeightConversionError(f'cannot convert to {what}: ' + '; '.join(problems))
    return OrderedDict((k, renamed[k][1]) for k in reference)


def _preview(items, n: int = 6) -> str:
    shown = ', '.join(items[:n])
    return f'[{shown}{", ..." if len(items) > n else ""}] ({len(items)})'


def mobilenet_v2_module_map() -> Dict[str, str]:
    """Module prefixes of torchvision ``mobilenet_v2`` -> ``mmpretrain.MobileNetV2``.

    torchvision keeps the stem, the 17 inverted-residual blocks and the last
    1x1 conv in one ``features`` sequence; mmpretrain splits the blocks into
    ``layer1``..``layer7`` after its ``arch_settings``. Inside a block
    torchvision has ``n`` Conv-BN-ReLU6 units (``conv.u.0`` / ``conv.u.1``;
    ``n = 1`` when the expand ratio is 1, else 2) then a bare projection conv
    and BN (``conv.n``, ``conv.n+1``); mmpretrain has ``n + 1`` ConvModules
    (``conv.u.conv`` / ``conv.u.bn``).

    Returns:
        source prefix -> target prefix, e.g. ``features.2.conv.3`` ->
        ``layer2.0.conv.2.bn``.
    """
    from mmpretrain.models.backbones import MobileNetV2

    pairs = {'features.0.0': 'conv1.conv', 'features.0.1': 'conv1.bn'}
    index = 1
    for layer, (expand, _, blocks, _) in enumerate(MobileNetV2.arch_settings, 1):
        units = 1 if expand == 1 else 2
        for block in range(blocks):
            tv, mm = f'features.{index}.conv', f'layer{layer}.{block}.conv'
            for u in range(units):
                pairs[f'{tv}.{u}.0'] = f'{mm}.{u}.conv'
                pairs[f'{tv}.{u}.1'] = f'{mm}.{u}.bn'
            pairs[f'{tv}.{units}'] = f'{mm}.{units}.conv'
            pairs[f'{tv}.{units + 1}'] = f'{mm}.{units}.bn'
            index += 1
    pairs[f'features.{index}.0'] = 'conv2.conv'
    pairs[f'features.{index}.1'] = 'conv2.bn'
    return pairs


def mobilenet_v2_feature_end(out_index: int) -> int:
    """torchvision ``features`` prefix equal to an mmpretrain MobileNetV2 output.

    ``MobileNetV2(out_indices=(i,))`` returns the same tensor as torchvision's
    ``model.features[:mobilenet_v2_feature_end(i)](x)``; e.g. ``2`` (32
    channels, stride 8) -> 7, ``4`` (96 channels, stride 16) -> 14, ``7``
    (``conv2``, 1280 channels) -> 19.

    Returns:
        the end (exclusive) of the ``features`` slice.
    """
    from mmpretrain.models.backbones import MobileNetV2

    blocks = [b for _, _, b, _ in MobileNetV2.arch_settings]
    if not 0 <= out_index <= len(blocks):
        raise IndexError(f'MobileNetV2 out index {out_index} not in [0, {len(blocks)}]')
    return 1 + sum(blocks[:out_index + 1]) + (out_index == len(blocks))


def convert_mobilenet_v2(tv_state_dict: StateDict,
                         widen_factor: float = 1.0) -> 'OrderedDict[str, torch.Tensor]':
    """torchvision ``mobilenet_v2`` state dict -> ``mmpretrain.MobileNetV2`` one.

    Args:
        tv_state_dict: e.g. ``torchvision.models.mobilenet_v2().state_dict()``
            or the contents of ``mobilenet_v2-b0353104.pth``.
        widen_factor: of the target backbone (torchvision's ``width_mult``).

    Returns:
        backbone state dict (the ``classifier`` is dropped); loads with
        ``strict=True``.

    Raises:
        WeightConversionError: missing / unexpected keys or shape mismatches.
    """
    from mmpretrain.models.backbones import MobileNetV2

    reference = MobileNetV2(widen_factor=widen_factor).state_dict()
    return _rename_and_check(tv_state_dict, mobilenet_v2_module_map(), reference,
                             drop=('classifier.',),
                             what=f'mmpretrain.MobileNetV2(widen_factor={widen_factor})')


def resnet_config(tv_state_dict: StateDict) -> Dict[str, int]:
    """Infer ``mmpretrain.ResNet`` arguments from a torchvision ResNet state dict.

    Returns:
        ``depth``, plus ``base_channels`` and ``expansion`` for bottleneck
        networks (``base_channels=128, expansion=2`` for Wide-ResNet-50/101-2).

    Raises:
        WeightConversionError: the block counts match no ResNet depth.
    """
    from mmpretrain.models.backbones import ResNet

    counts = []
    for stage in range(1, 5):
        blocks = {int(k.split('.')[1]) for k in tv_state_dict
                  if k.startswith(f'layer{stage}.')}
        counts.append(len(blocks))
    bottleneck = 'layer1.0.conv3.weight' in tv_state_dict
    depth = next((d for d, (block, stages) in ResNet.arch_settings.items()
                  if tuple(stages) == tuple(counts)
                  and (block.__name__ == 'Bottleneck') == bottleneck), None)
    if depth is None:
        raise WeightConversionError(
            f'blocks per stage {counts} ({"bottleneck" if bottleneck else "basic"}) match '
            'no mmpretrain ResNet depth')
    config = {'depth': depth}
    if bottleneck:
        mid = tv_state_dict['layer1.0.conv1.weight'].shape[0]
        out = tv_state_dict['layer1.0.conv3.weight'].shape[0]
        config.update(base_channels=mid, expansion=out // mid)
    return config


def convert_resnet(tv_state_dict: StateDict, **backbone_kwargs) -> 'OrderedDict[str, torch.Tensor]':
    """torchvision ``resnet*`` / ``wide_resnet*`` state dict -> ``mmpretrain.ResNet`` one.

    Names already agree; the ``fc`` head is dropped and every key and shape
    is checked against the mmpretrain backbone.

    Args:
        tv_state_dict: e.g. ``torchvision.models.resnet18().state_dict()``.
        **backbone_kwargs: ``mmpretrain.ResNet`` arguments; without
            ``depth``, :func:`resnet_config` of the state dict supplies
            ``depth``, ``base_channels`` and ``expansion``.

    Returns:
        backbone state dict; loads with ``strict=True``.

    Raises:
        WeightConversionError: missing / unexpected keys or shape mismatches.
    """
    from mmpretrain.models.backbones import ResNet

    inferred = {} if 'depth' in backbone_kwargs else resnet_config(tv_state_dict)
    kwargs = {**inferred, **backbone_kwargs}
    reference = ResNet(**kwargs).state_dict()
    identity = {k.rpartition('.')[0]: k.rpartition('.')[0] for k in reference}
    args = ', '.join(f'{k}={v}' for k, v in kwargs.items())
    return _rename_and_check(tv_state_dict, identity, reference, drop=('fc.',),
                             what=f'mmpretrain.ResNet({args})')
