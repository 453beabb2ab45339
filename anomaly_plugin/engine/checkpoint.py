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
from typing import Any, List

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
