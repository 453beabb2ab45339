"""Config helpers shared by the tools: command-line shortcuts and CPU fallbacks."""
import copy
from typing import Any, Dict, Iterator, Optional, Tuple

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


def _as_size(size) -> Tuple[int, int]:
    if isinstance(size, (int, str)):
        return int(size), int(size)
    h, w = (int(s) for s in size)
    return h, w


#: top-level keys that the tools' ``--cfg-options`` propagate to every place
#: they are used (see :func:`apply_shortcuts`)
SHORTCUTS = ('data_root', 'img_size', 'holdout_ratio', 'visualize', 'time_budget_s')


def _set_image_size(node: Any, size: Tuple[int, int]) -> None:
    """Set every ``image_size`` key in a (nested) model config to ``size``."""
    if isinstance(node, dict):
        if 'image_size' in node:
            node['image_size'] = size
        for value in node.values():
            _set_image_size(value, size)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _set_image_size(value, size)


def apply_shortcuts(cfg: Config, options: Optional[Dict[str, Any]] = None) -> Config:
    """Propagate the shortcut keys given in ``options``.

    Only what ``options`` names changes: a config loaded by
    ``Config.fromfile`` alone already holds consistent values (each config
    writes its sizes into its pipelines itself), so nothing is rewritten
    unless asked for.

    ``data_root``: every dataset's ``data_root``. ``img_size``: every
    ``Resize`` of every pipeline (an int means square) and every
    ``image_size`` in the model config (networks whose layers depend on the
    input size, e.g. the DCGAN stacks). ``holdout_ratio``:
    every training or holdout dataset (the calibration set follows).
    ``visualize``: the ``AnomalyVisualizationHook``'s ``enable``.
    ``time_budget_s``: a ``TimeBudgetHook`` with that budget in the custom
    hooks (its budget when there is one already). The top-level key is set
    too, so the config stays self-consistent.
    """
    options = options or {}
    if 'data_root' in options:
        cfg.data_root = options['data_root']
        for ds in _datasets(cfg):
            ds['data_root'] = options['data_root']
    if 'img_size' in options:
        size = _as_size(options['img_size'])
        cfg.img_size = size
        for ds in _datasets(cfg):
            for t in ds.get('pipeline', []) or []:
                if _type_name(t.get('type')).split('.')[-1] == 'Resize':
                    t['size'] = size
        _set_image_size(cfg.get('model'), size)
    if 'holdout_ratio' in options:
        cfg.holdout_ratio = float(options['holdout_ratio'])
        for ds in _datasets(cfg):
            if ds.get('split', 'train') in ('train', 'holdout') or 'holdout_ratio' in ds:
                ds['holdout_ratio'] = cfg.holdout_ratio
    if 'visualize' in options:
        cfg.visualize = bool(options['visualize'])
        for hook in cfg.get('custom_hooks', []) or []:
            if _type_name(hook.get('type')).endswith('AnomalyVisualizationHook'):
                hook['enable'] = cfg.visualize
    if 'time_budget_s' in options:
        cfg.time_budget_s = float(options['time_budget_s'])
        hooks = list(cfg.get('custom_hooks', []) or [])
        found = [h for h in hooks if _type_name(h.get('type')).endswith('TimeBudgetHook')]
        for hook in found:
            hook['budget_s'] = cfg.time_budget_s
        if not found:
            hooks.append(dict(type='anomaly_plugin.TimeBudgetHook',
                              budget_s=cfg.time_budget_s))
        cfg.custom_hooks = hooks
    return cfg


def merge_options(cfg: Config, options: Optional[Dict[str, Any]]) -> Config:
    """``cfg.merge_from_dict(options)`` followed by :func:`apply_shortcuts`."""
    if options:
        cfg.merge_from_dict(copy.deepcopy(options))
    return apply_shortcuts(cfg, options)


def disable_validation(cfg: Config) -> Config:
    """Remove validation from a training config (in place)."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if cfg.get('train_cfg'):
        cfg.train_cfg.pop('val_interval', None)
        cfg.train_cfg.pop('val_begin', None)
    return cfg


def load_tool_config(path: str, cfg_options: Optional[Dict[str, Any]] = None,
                     data_root: Optional[str] = None, launcher: str = 'none',
                     work_dir: Optional[str] = None, **shortcuts) -> Config:
    """The config as ``tools/train.py`` and ``tools/test.py`` prepare it.

    Loads ``path``, merges ``cfg_options`` plus the shortcut values
    (``data_root`` and any given in ``shortcuts``, e.g. ``visualize=True``),
    sets up the launcher (see :func:`setup_distributed`) and the work dir
    (``work_dirs/<config name>`` unless given or set by the config).
    """
    import os.path as osp

    from .dist import setup_distributed
    cfg = Config.fromfile(path)
    options = dict(cfg_options or {})
    if data_root:
        options['data_root'] = data_root
    options.update({k: v for k, v in shortcuts.items() if v is not None})
    merge_options(cfg, options)
    setup_distributed(cfg, launcher)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
