"""Weights-only checkpoint loading for MMEngine.

MMEngine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6
that means weights-only unpickling, which refuses MMEngine's own resume
state (the message hub's ``HistoryBuffer`` objects pickle their statistics
methods through ``builtins.getattr``). Allowing ``getattr`` would let a
checkpoint reach attributes of any allowed object, so instead
:class:`~anomaly_plugin.engine.hooks.PlainCheckpointHook` stores that state
as plain tensors and numbers, and this module keeps loading weights-only:

* :func:`safe_load` is ``torch.load(weights_only=True)`` with an explicit,
  short allow-list and a clear error for anything else;
* :func:`install_safe_loader` makes MMEngine's local-file loader use it.
"""
import os.path as osp
import pickle
from typing import Any, List, Optional, Tuple

import torch
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds pickled objects outside the allow-list."""


#: Globals a checkpoint may name besides torch's own weights-only set. The
#: checkpoints written by the plugin's runners need none (see
#: ``PlainCheckpointHook``); extend it only with plain data types, never with
#: callables.
SAFE_GLOBALS: List[Any] = []


def safe_load(filename: str, map_location=None) -> Any:
    """Load a checkpoint with weights-only unpickling.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file pickles a global that is not plain
            data (e.g. a function or class that could run code on load).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as err:
        detail = next((ln.strip() for ln in str(err).splitlines()
                       if 'global' in ln.lower()), str(err).splitlines()[-1])
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: it holds pickled '
            f'objects that are not plain data ({detail}). Only load '
            'checkpoints whose source you trust, and re-save them as plain '
            'state dicts.') from err


def load_from_safe_local(filename, map_location):
    return safe_load(filename, map_location)


def install_safe_loader() -> None:
    """Route MMEngine's local checkpoint loading through :func:`safe_load`."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_safe_local,
                                     force=True)


_URL_PREFIXES = ('http://', 'https://')


def pretrained_urls(cfg) -> List[Tuple[str, str]]:
    """Where a model config downloads pretrained weights from.

    Returns:
        ``(key, url)`` for every ``checkpoint`` key holding a URL
        (``init_cfg=dict(type='Pretrained', checkpoint=URL)`` among them), in
        config order; ``key`` is its dotted path from the config's root (what
        ``--cfg-options`` takes), e.g. ``model.backbone.backbone.init_cfg.checkpoint``.
    """
    found: List[Tuple[str, str]] = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if (key == 'checkpoint' and isinstance(value, str)
                        and value.startswith(_URL_PREFIXES)):
                    found.append((f'{path}.{key}', value))
                else:
                    walk(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}.{i}')

    walk(cfg.get('model'), 'model')
    return found


def weights_download_message(err: BaseException, cfg, config: str) -> Optional[str]:
    """A message for a training that failed downloading pretrained weights.

    Args:
        err: what the training raised.
        cfg: the run's config.
        config: the config file, as the user named it.

    Returns:
        None when ``err`` is not a network error (``URLError``,
        ``ConnectionError``, ``TimeoutError``) or the model names no URL;
        otherwise which weights could not be fetched, why, and the two ways
        to run offline: the file put where it is looked up first (torch's
        hub cache), or the config key pointed at a local copy.
    """
    import urllib.error
    urls = pretrained_urls(cfg)
    if not urls or not isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError)):
        return None
    cache = osp.join(torch.hub.get_dir(), 'checkpoints')
    lines = [f'{config} needs pretrained weights that could not be downloaded '
             f'({getattr(err, "reason", err)}):']
    for key, url in urls:
        lines.append(f'  {url}: put the file at {osp.join(cache, osp.basename(url))} '
                     f'(looked up first), or pass --cfg-options {key}=LOCAL_PATH')
    lines.append('The MobileNetV2 configs use weights installed offline (python tools/weights.py).')
    return '\n'.join(lines)
