"""What a survey runs: the shipped methods by family, and the categories of a
data root (MVTec layout, a root of such folders, or VisA)."""
import csv
import glob
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import anomaly_plugin

#: configs folder name -> family
FAMILIES = {
    'ae': 'reconstruction', 'riad': 'reconstruction', 'latent': 'latent',
    'generative': 'generative', 'patchcore': 'feature embedding',
    'padim': 'feature embedding', 'tiling': 'tiling', 'stfpm': 'feature level',
    'reverse_distillation': 'feature level', 'fastflow': 'feature level',
    'cflow': 'feature level', 'patch_svdd': 'feature level', 'dfm': 'feature level',
    'draem': 'synthetic anomalies', 'cutpaste': 'synthetic anomalies',
    'simplenet': 'synthetic anomalies',
}
#: one representative per family that trains in minutes on a CPU
DEFAULT_METHODS = ('padim_mobilenetv2', 'ssim_ae', 'feature_editing_ae', 'ganomaly',
                   'stfpm_mobilenetv2', 'draem')
def tools_root() -> str:
    """The folder holding ``configs/`` and ``tools/``: the repository, or an
    installed package's ``.mim``."""
    pkg = osp.dirname(osp.abspath(anomaly_plugin.__file__))
    for root in (osp.dirname(pkg), osp.join(pkg, '.mim')):
        if osp.isfile(osp.join(root, 'tools', 'train.py')) and osp.isdir(
                osp.join(root, 'configs')):
            return root
    raise FileNotFoundError(f'no configs/ and tools/ beside or inside {pkg}')


def shipped_methods() -> Dict[str, dict]:
    """Every shipped ``configs/<family>/<name>_mvtec.py``: method name -> family, config."""
    root = tools_root()
    out = {}
    for path in sorted(glob.glob(osp.join(root, 'configs', '*', '*_mvtec.py'))):
        folder = osp.basename(osp.dirname(path))
        if folder not in FAMILIES:
            continue
        name = osp.basename(path)[:-len('_mvtec.py')]
        out[name] = dict(family=FAMILIES[folder], config=path)
    return out


def select_methods(methods: Optional[Sequence[str]] = None,
                   families: Optional[Sequence[str]] = None,
                   run_all: bool = False) -> List[str]:
    """Method names from names, families or all; the default set otherwise.

    Raises:
        ValueError: an unknown method or family (the message lists the known ones).
    """
    known = shipped_methods()
    if run_all:
        return list(known)
    if methods:
        unknown = [m for m in methods if m not in known and not _is_config_file(m)]
        if unknown:
            raise ValueError(f'unknown method(s) {unknown}; shipped: {sorted(known)}')
        return list(methods)
    if families:
        names = sorted(set(FAMILIES.values()))
        unknown = [f for f in families if f not in names]
        if unknown:
            raise ValueError(f'unknown famil(y/ies) {unknown}; known: {names}')
        return [m for m, v in known.items() if v['family'] in families]
    return [m for m in DEFAULT_METHODS if m in known]


def _is_config_file(method: str) -> bool:
    return method.endswith('.py') and osp.isfile(method)


def method_info(method: str) -> dict:
    """Family and config of a shipped method, or of a config file of your own
    (family ``'custom'``, named after the file)."""
    if _is_config_file(method):
        name = osp.basename(method)[:-3]
        return dict(name=name, family='custom', config=osp.abspath(method))
    return dict(name=method, **shipped_methods()[method])


#: the split file that marks a VisA root
VISA_CSV = osp.join('split_csv', '1cls.csv')


def categories(data_root: str) -> Dict[str, dict]:
    """The categories to survey, ``{name: dict(root=..., options=[...])}``.

    A folder holding ``train/`` is one category (MVTec layout); a VisA root
    (``split_csv/1cls.csv``) gives every ``object`` of the CSV, read with
    :class:`VisADataset` (the options set the datasets' type and category);
    any other folder gives each sub-folder holding ``train/``.
    """
    if osp.isdir(osp.join(data_root, 'train')):
        return {osp.basename(osp.normpath(data_root)): dict(root=data_root, options=[])}
    if osp.isfile(osp.join(data_root, VISA_CSV)):
        with open(osp.join(data_root, VISA_CSV), newline='', encoding='utf-8') as f:
            objects = sorted({r['object'] for r in csv.DictReader(f)})
        return {c: dict(root=data_root, options=[
            f'{loader}.dataset.{key}={value}' for loader in ('train_dataloader',
                                                             'test_dataloader')
            for key, value in (('type', 'anomaly_plugin.VisADataset'), ('category', c),
                               ('split_csv', VISA_CSV))]) for c in objects}
    found = {d: dict(root=osp.join(data_root, d), options=[])
             for d in sorted(os.listdir(data_root))
             if osp.isdir(osp.join(data_root, d, 'train'))}
    if not found:
        raise FileNotFoundError(f'{data_root!r} holds no train/ folder, no {VISA_CSV} '
                                'and no category folders with a train/ folder')
    return found
