"""Config helpers shared by the tools: top-level shortcuts and CPU fallbacks."""
import copy
from typing import Any, Dict, Iterator, Optional

from mmengine.config import Config

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _type_name(t: Any) -> str:
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _datasets(cfg: Config) -> Iterator[dict]:
    """Every dataset config of the config: dataloaders and hooks."""
    for key in DATALOADERS:
        loader = cfg.get(key)
        if loader and loader.get('dataset') is not None:
            yield loader['dataset']
    for hook in cfg.get('custom_hooks', []) or []:
        # an inherited calibration dataset follows the training dataset
        if isinstance(hook.get('dataset'), dict) and 'data_root' in hook['dataset']:
            yield hook['dataset']


def apply_shortcuts(cfg: Config, options: Optional[Dict[str, Any]] = None) -> Config:
    """Propagate top-level shortcut keys set by ``--cfg-options``.

    ``data_root``: every dataset's ``data_root``; ``img_size``: every
    ``Resize`` of every pipeline (an int means square); ``visualize``: the
    ``AnomalyVisualizationHook``'s ``enable``. Keys not in ``options`` are left
    as the config wrote them.
    """
    options = options or {}
    if 'data_root' in options:
        for ds in _datasets(cfg):
            ds['data_root'] = options['data_root']
    if 'img_size' in options:
        size = options['img_size']
        size = (int(size), int(size)) if isinstance(size, (int, str)) else tuple(
            int(s) for s in size)
        cfg.img_size = size
        for ds in _datasets(cfg):
            for t in ds.get('pipeline', []) or []:
                if _type_name(t.get('type')).split('.')[-1] == 'Resize':
                    t['size'] = size
    if 'visualize' in options:
        for hook in cfg.get('custom_hooks', []) or []:
            if _type_name(hook.get('type')).endswith('AnomalyVisualizationHook'):
                hook['enable'] = bool(options['visualize'])
    return cfg


def merge_options(cfg: Config, options: Optional[Dict[str, Any]]) -> Config:
    """``cfg.merge_from_dict(options)`` followed by :func:`apply_shortcuts`."""
    if options:
        cfg.merge_from_dict(copy.deepcopy(options))
    return apply_shortcuts(cfg, options)
