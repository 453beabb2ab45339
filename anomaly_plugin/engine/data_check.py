"""Every bad file of a run's datasets, found before the first iteration, in one error."""
import copy
from typing import List, Sequence

from mmengine.config import Config
from mmengine.registry import init_default_scope

from anomaly_plugin.datasets.base import BaseAnomalyDataset
from anomaly_plugin.datasets.file_check import BadFile, check_samples, report_bad_files
from anomaly_plugin.registry import DATASETS

#: the dataloaders each tool reads
TRAIN_LOADERS = ('train_dataloader', 'val_dataloader')
TEST_LOADERS = ('test_dataloader',)


def _dataset_configs(cfg: Config, loaders: Sequence[str]) -> List[tuple]:
    """``(name, dataset config)`` of the given dataloaders; a training set that
    holds images out (``holdout_ratio > 0``) is checked with them."""
    out = []
    for key in loaders:
        loader = cfg.get(key)
        if not loader or loader.get('dataset') is None:
            continue
        if key == 'val_dataloader' and not cfg.get('val_cfg'):
            continue
        ds = copy.deepcopy(loader['dataset'])
        out.append((key, ds))
        if key == 'train_dataloader' and float(ds.get('holdout_ratio', 0) or 0) > 0:
            out.append((f'{key} (held-out images)', dict(ds, split='holdout')))
    return out


def check_data_files(cfg: Config, loaders: Sequence[str] = TRAIN_LOADERS) -> None:
    """Check the files of every split a run reads, and report all bad ones at once.

    Each dataset checks its own files when built (one error per split);
    this runs those checks over all the splits of ``loaders`` first, so a
    user sees every bad file of the run in one error. Datasets with
    ``skip_bad_files=True`` are left to drop theirs with a warning.

    Args:
        cfg: the run's config (after ``--cfg-options``).
        loaders: the dataloader keys the run uses.

    Raises:
        BadFilesError: bad files in any of them (listed per file with the
            split, the first 50 shown, and the count).
    """
    init_default_scope(cfg.get('default_scope', 'anomaly_plugin'))
    bad, seen = [], set()
    for key, ds_cfg in _dataset_configs(cfg, loaders):
        if ds_cfg.get('skip_bad_files') or ds_cfg.get('check_files') is False:
            continue
        cls = ds_cfg.get('type')
        cls = DATASETS.get(cls) if isinstance(cls, str) else cls
        if not (isinstance(cls, type) and issubclass(cls, BaseAnomalyDataset)):
            continue  # a dataset of another package: it checks nothing
        dataset = DATASETS.build(dict(ds_cfg, check_files=False, pipeline=[], serialize_data=False))
        for b in check_samples(dataset.data_list):
            if b.path not in seen:
                seen.add(b.path)
                bad.append(BadFile(b.path, f'{b.reason} [{key}]'))
    report_bad_files(bad, False, 'the data of this run',
                     'checking the files of every split before the first iteration')


__all__ = ['TEST_LOADERS', 'TRAIN_LOADERS', 'check_data_files']
