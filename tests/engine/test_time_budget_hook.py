"""TimeBudgetHook ends training after the epoch at which one more would pass the
budget; the shortcut adds it; later hooks still run."""
import json

import pytest
from conftest import AE_CONFIG, make_mvtec
from mmengine.config import Config
from mmengine.runner import Runner

from anomaly_plugin.engine import apply_shortcuts, disable_validation, merge_options
from anomaly_plugin.engine.hooks import TimeBudgetHook


def training_runner(config, options):
    cfg = disable_validation(merge_options(Config.fromfile(config), options))
    return Runner.from_cfg(cfg)


def test_training_stops_within_the_budget(tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=8, n_good=1, n_bad=1)
    opts = {'data_root': data, 'img_size': 32, 'work_dir': str(tmp_path / 'w'),
            'train_cfg.max_epochs': 4, 'train_cfg.min_iters': 0,
            'train_dataloader.batch_size': 4, 'time_budget_s': 1e-3}
    runner = training_runner(AE_CONFIG, opts)
    assert any(isinstance(h, TimeBudgetHook) for h in runner.hooks)
    runner.train()
    info = json.loads((tmp_path / 'w' / 'time_budget.json').read_text())
    assert info['epochs'] == 1 and info['max_epochs'] == 4 and info['stopped']
    assert (tmp_path / 'w' / 'epoch_1.pth').exists()
    assert not (tmp_path / 'w' / 'epoch_2.pth').exists()


def test_a_large_budget_changes_nothing_and_the_shortcut_updates_a_hook(tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=8, n_good=1, n_bad=1)
    opts = {'data_root': data, 'img_size': 32, 'work_dir': str(tmp_path / 'w'),
            'train_cfg.max_epochs': 2, 'train_cfg.min_iters': 0,
            'train_dataloader.batch_size': 4, 'time_budget_s': 1e6}
    training_runner(AE_CONFIG, opts).train()
    info = json.loads((tmp_path / 'w' / 'time_budget.json').read_text())
    assert info['epochs'] == 2 and not info['stopped']
    cfg = apply_shortcuts(Config.fromfile(AE_CONFIG), {'time_budget_s': 5})
    cfg = apply_shortcuts(cfg, {'time_budget_s': 7})
    hooks = [h for h in cfg.custom_hooks if str(h['type']).endswith('TimeBudgetHook')]
    assert len(hooks) == 1 and hooks[0]['budget_s'] == 7.0
    with pytest.raises(ValueError):
        TimeBudgetHook(0)
