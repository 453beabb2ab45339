"""The two-stage VQ-VAE config through the tools as a user runs them, and --resume in
either stage; the feature-editing config's centres through the checkpoint."""
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

VQ = 'configs/latent/vqvae_prior_mvtec.py'
EDIT = 'configs/latent/feature_editing_ae_mvtec.py'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_mvtec(tmp_path_factory.mktemp('latent') / 'cat', size=32, n_train=20,
                      n_good=3, n_bad=3)


def _options(data, epochs, **extra):
    return {'data_root': data, 'img_size': 32, 'train_dataloader.batch_size': 4,
            'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
            'train_cfg.min_iters': 0, 'default_hooks.logger.interval': 1, **extra}


def test_vq_train_test_infer_agree(data, tmp_path):
    work = tmp_path / 'work'
    opts = options_to_cli(_options(data, 3, **{'model.vq_epochs': 2}))
    out = run_tool(['tools/train.py', VQ, '--work-dir', str(work), '--cfg-options', *opts])
    # both stages logged, the threshold fitted after training, validation ran
    for key in ('loss_rec', 'loss_commit', 'perplexity', 'loss_prior', 'autoencoder.lr',
                'Normal-image statistics: code_threshold', 'image/AUROC'):
        assert key in out, key
    ckpt = str(work / 'epoch_3.pth')
    state = torch.load(ckpt, weights_only=True)
    assert set(state['optimizer']) == {'autoencoder', 'prior'}
    sd = state['state_dict']
    assert bool(sd['threshold_fitted']) and torch.isfinite(sd['code_threshold'])
    assert torch.isfinite(sd['postprocessor.image_threshold'])
    rows = assert_test_and_infer_agree(VQ, ckpt, data, tmp_path, ['--cfg-options', *opts], 6)
    assert {r['decision'] for r in rows} <= {'OK', 'NG'}


def test_feature_editing_centres_reach_the_checkpoint(data, tmp_path):
    work = tmp_path / 'work'
    opts = options_to_cli(_options(data, 1, **{'model.autoencoder.neck.num_clusters': 8}))
    out = run_tool(['tools/train.py', EDIT, '--work-dir', str(work), '--cfg-options', *opts])
    assert 'Normal-image statistics: cluster_sizes' in out
    sd = safe_load(str(work / 'epoch_1.pth'))['state_dict']
    assert bool(sd['autoencoder.neck.fitted'])
    centres = sd['autoencoder.neck.centres']
    assert centres.shape == (8, 32) and centres.abs().sum() > 0


class _Record(Hook):
    """Optimizer states when training starts and the stage of every iteration."""

    def __init__(self):
        self.states, self.stages = None, []

    def before_train_epoch(self, runner):
        if self.states is None:
            self.states = copy.deepcopy(runner.optim_wrapper.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.stages.append(runner.model.current_stage())


def _runner(data, work, resume_from=None):
    return training_runner(VQ, {
        **_options(data, 3, **{'model.vq_epochs': 2}), 'work_dir': str(work),
        'train_dataloader.dataset.holdout_ratio': 0.0,
        'default_hooks.checkpoint.max_keep_ckpts': -1}, resume_from)


def _steps(states, part):
    return {float(s['step']) for s in states[part]['state'].values()}


def test_vq_resume_continues_in_either_stage(data, tmp_path):
    first = _runner(data, tmp_path / 'a')
    first.train()
    record = _Record()
    first_ckpts = [tmp_path / 'a' / f'epoch_{e}.pth' for e in (1, 2)]
    # resumed inside stage 1: one more VQ-VAE epoch, then the prior
    second = _runner(data, tmp_path / 'b', resume_from=first_ckpts[0])
    second.register_hook(record)
    second.train()
    assert record.stages == ['vq'] * 5 + ['prior'] * 5  # 20 images / 4 per epoch
    assert _steps(record.states, 'autoencoder') == {5.0}
    end = safe_load(str(tmp_path / 'b' / 'epoch_3.pth'))['optimizer']
    assert _steps(end, 'autoencoder') == {10.0} and _steps(end, 'prior') == {5.0}
    # resumed at the stage boundary: only the prior trains, the VQ-VAE stays as saved
    record = _Record()
    third = _runner(data, tmp_path / 'c', resume_from=first_ckpts[1])
    third.register_hook(record)
    third.train()
    assert record.stages == ['prior'] * 5
    saved = safe_load(str(first_ckpts[1]))['state_dict']
    final = third.model.state_dict()
    for k, v in saved.items():
        if k.startswith('autoencoder.'):
            assert torch.equal(final[k], v), k
    assert any(not torch.equal(final[k], v) for k, v in saved.items() if k.startswith('prior.'))
