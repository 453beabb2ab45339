"""NormalFitHook: models with fit_stage='after' are fitted on the training images
after training, before calibration; a failed fit keeps the trained checkpoint."""
import pytest
import torch
from conftest import AE_CONFIG, make_mvtec, tiny_ae_options
from mmengine.config import Config
from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import disable_validation, merge_options, safe_load
from anomaly_plugin.models import ConvAutoEncoder
from anomaly_plugin.registry import MODELS


@MODELS.register_module(force=True)
class _FittedAfterAE(ConvAutoEncoder):
    """Records the fit; its map is offset by the fitted count, so calibration
    after the fit gives other thresholds than before it."""

    fit_stage = 'after'
    fail = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer('fitted_images', torch.tensor(0.0))
        self.events = []

    def fit_reset(self):
        self.events.append('reset')
        self._seen = 0

    def fit_update(self, inputs, indices):
        self.events.append(('update', self.training, torch.is_grad_enabled(), indices.tolist()))
        self._seen += inputs.shape[0]

    def fit_finish(self, progress=True):
        if self.fail:
            raise ValueError('the statistics exploded')
        self.fitted_images.fill_(self._seen)
        return dict(images=[float(self._seen)])

    def anomaly_map(self, inputs):
        self.events.append('map')
        return super().anomaly_map(inputs) + self.fitted_images


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    # 10 training images: 1 held out for calibration, 9 trained and fitted
    return make_mvtec(tmp_path_factory.mktemp('fit') / 'cat', size=32, n_train=10,
                      n_good=2, n_bad=2)


def _runner(data, work, fail=False, validate=False, epochs=1):
    cfg = merge_options(Config.fromfile(AE_CONFIG), tiny_ae_options(data, work, epochs=epochs))
    cfg.model.type = '_FittedAfterAE'
    if validate:  # on the test split every epoch
        cfg.train_cfg.val_interval = 1
    else:
        disable_validation(cfg)
    runner = Runner.from_cfg(cfg)
    runner.model.fail = fail
    return runner


def test_the_fit_runs_after_training_on_the_training_images_then_calibration(data, tmp_path):
    runner = _runner(data, tmp_path / 'work')
    runner.train()
    model = runner.model
    updates = [e for e in model.events if isinstance(e, tuple)]
    # one pass in eval mode without gradients over the 9 training images, in order
    assert [i for e in updates for i in e[3]] == list(range(9))
    assert all(not training and not grad for _, training, grad, _ in updates)
    assert model.training  # the mode comes back
    first_fit = model.events.index('reset')
    assert 'map' in model.events[first_fit:]  # calibration read the fitted maps
    ckpt = safe_load(str(tmp_path / 'work' / 'epoch_1.pth'))
    assert float(ckpt['state_dict']['fitted_images']) == 9  # the fit is in the checkpoint
    assert ckpt['meta']['calibration'].startswith('calibrated: ')
    # the calibrated threshold is above the offset the fit added to every map
    assert float(ckpt['state_dict']['postprocessor.image_threshold']) > 9


def test_a_failed_fit_keeps_the_trained_checkpoint_and_says_why(data, tmp_path):
    runner = _runner(data, tmp_path / 'work', fail=True)
    with pytest.raises(RuntimeError, match=r'epoch_1.pth is kept as trained.*exploded'):
        runner.train()
    ckpt = safe_load(str(tmp_path / 'work' / 'epoch_1.pth'))
    assert ckpt['meta']['calibration'] == (
        'not calibrated: fitting the normal-image statistics failed: the statistics exploded')
    assert float(ckpt['state_dict']['fitted_images']) == 0


def test_models_without_a_later_fit_are_left_alone(data, tmp_path):
    cfg = merge_options(Config.fromfile(AE_CONFIG), tiny_ae_options(data, tmp_path / 'w', 1))
    runner = Runner.from_cfg(disable_validation(cfg))
    assert runner.model.fit_stage is None
    runner.train()  # nothing to fit: no pass, calibration as usual
    assert safe_load(str(tmp_path / 'w' / 'epoch_1.pth'))['meta']['calibration'].startswith(
        'calibrated: ')


def test_validation_during_training_scores_a_fitted_model(data, tmp_path):
    """Each validation is preceded by a fit; the one after the last epoch is not repeated."""
    runner = _runner(data, tmp_path / 'work', validate=True, epochs=2)
    runner.train()
    events = runner.model.events
    resets = [i for i, e in enumerate(events) if e == 'reset']
    assert len(resets) == 2  # epoch 1's validation, epoch 2's; not again after training
    # every validation map follows a fit: none before the first one
    assert 'map' not in events[:resets[0]]
    ckpt = safe_load(str(tmp_path / 'work' / 'epoch_2.pth'))
    assert float(ckpt['state_dict']['fitted_images']) == 9
    assert ckpt['meta']['calibration'].startswith('calibrated: ')
