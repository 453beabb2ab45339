"""An adversarial config through the tools as a user runs them, and --resume."""
import copy

import pytest
import torch
from conftest import (
    assert_test_and_infer_agree,
    make_mvtec,
    options_to_cli,
    run_tool,
    training_runner,
)
from mmengine.hooks import Hook

from anomaly_plugin.engine import safe_load

CONFIG = 'configs/generative/ganomaly_mvtec.py'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_mvtec(tmp_path_factory.mktemp('gan') / 'cat', size=32, n_train=20,
                      n_good=3, n_bad=3)


def _options(data, epochs):
    return {'data_root': data, 'img_size': 32, 'train_dataloader.batch_size': 4,
            'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
            'train_cfg.min_iters': 0,
            'default_hooks.logger.interval': 1}


def test_train_test_infer_agree(data, tmp_path):
    work = tmp_path / 'work'
    opts = options_to_cli(_options(data, 2))
    out = run_tool(['tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options', *opts])
    # both parts logged per term, validation and calibration ran
    for key in ('loss_d_real', 'loss_d_fake', 'loss_g_adv', 'loss_g_con', 'loss_g_enc',
                'generator.lr', 'discriminator.lr', 'image/AUROC'):
        assert key in out, key
    ckpt = str(work / 'epoch_2.pth')
    state = torch.load(ckpt, weights_only=True)
    assert set(state['optimizer']) == {'generator', 'discriminator'}
    assert torch.isfinite(state['state_dict']['postprocessor.image_threshold'])
    rows = assert_test_and_infer_agree(CONFIG, ckpt, data, tmp_path,
                                       ['--cfg-options', *opts], 6)
    assert {r['decision'] for r in rows} <= {'OK', 'NG'}


class _RecordOptimizers(Hook):
    def __init__(self):
        self.states = None

    def before_train_epoch(self, runner):
        if self.states is None:
            self.states = copy.deepcopy(runner.optim_wrapper.state_dict())


def _runner(data, work, epochs, resume_from=None):
    return training_runner(CONFIG, {**_options(data, epochs), 'work_dir': str(work),
                                    'train_dataloader.dataset.holdout_ratio': 0.0},
                           resume_from)


def test_resume_restores_both_optimizers(data, tmp_path):
    first = _runner(data, tmp_path / 'a', 1)
    first.train()
    ckpt = tmp_path / 'a' / 'epoch_1.pth'
    saved = safe_load(str(ckpt))['optimizer']
    second = _runner(data, tmp_path / 'b', 2, resume_from=ckpt)
    hook = _RecordOptimizers()
    second.register_hook(hook)
    second.train()
    assert second.epoch == 2
    for part in ('generator', 'discriminator'):
        got, ref = hook.states[part]['state'], saved[part]['state']
        assert len(got) == len(ref) > 0
        for k in ref:
            assert float(got[k]['step']) == float(ref[k]['step']) == 5  # 20 images / 4
            torch.testing.assert_close(got[k]['exp_avg'], ref[k]['exp_avg'])
