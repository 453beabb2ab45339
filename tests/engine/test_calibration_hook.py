"""CalibrationHook: settings checked at start-up, the trained checkpoint saved first."""
import logging
from pathlib import Path

import pytest
import torch
from conftest import AE_CONFIG, make_mvtec, options_to_cli, run_tool, tiny_ae_options
from mmengine.config import Config
from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import disable_validation, load_tool_config, merge_options, safe_load
from anomaly_plugin.engine.hooks import calibration_hook


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_mvtec(tmp_path_factory.mktemp('calib') / 'cat', size=32, n_train=10,
                      n_good=2, n_bad=2)


def _runner(data, work, **extra):
    cfg = merge_options(Config.fromfile(AE_CONFIG),
                        {**tiny_ae_options(data, work, epochs=1), **extra})
    return Runner.from_cfg(disable_validation(cfg))


def _thresholds(path):
    sd = safe_load(str(path))['state_dict']
    return float(sd['postprocessor.image_threshold']), float(sd['postprocessor.pixel_threshold'])


def test_holdout_ratio_shortcut_reaches_the_datasets():
    cfg = load_tool_config(AE_CONFIG, {'holdout_ratio': 0})
    assert cfg.holdout_ratio == 0 and cfg.train_dataloader.dataset.holdout_ratio == 0
    assert Config.fromfile(AE_CONFIG).train_dataloader.dataset.holdout_ratio == 0.1


def test_holdout_zero_trains_saves_and_skips_calibration(data, tmp_path):
    # the tool as a user runs it, progress bars on
    work = tmp_path / 'work'
    opts = tiny_ae_options(data, work, epochs=1)
    opts['holdout_ratio'] = 0
    out = run_tool(['tools/train.py', AE_CONFIG, '--cfg-options', *options_to_cli(opts)])
    assert 'no normal training image is held out' in out
    image_thr, pixel_thr = _thresholds(work / 'epoch_1.pth')
    assert image_thr != image_thr and pixel_thr != pixel_thr  # NaN: not calibrated
    # the log at the end and the checkpoint say so, and why
    why = 'not calibrated: no normal training image is held out (holdout_ratio=0)'
    assert f'the model is {why}' in out and 'so is the checkpoint' in out
    assert safe_load(str(work / 'epoch_1.pth'))['meta']['calibration'].startswith(why)
    image = str(next((Path(data) / 'test' / 'good').iterdir()))
    model_opts = {k: v for k, v in opts.items() if k.startswith(('model.', 'img_size'))}
    out = run_tool(['tools/infer.py', AE_CONFIG, str(work / 'epoch_1.pth'), image, '--out',
                    str(tmp_path / 'infer'), '--cfg-options', *options_to_cli(model_opts)])
    assert f'no calibrated threshold ({why}' in out


def test_calibration_written_into_the_saved_checkpoint(data, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(calibration_hook, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw.get('level'))))
    runner = _runner(data, tmp_path / 'work')
    runner.train()
    # 10 training images, 0.1 held out: one image sets the thresholds, and the log says so
    assert any('thresholds come from 1 images only' in m and level == logging.WARNING
               for m, level in logged)
    image_thr, pixel_thr = _thresholds(tmp_path / 'work' / 'epoch_1.pth')
    post = runner.model.postprocessor
    assert image_thr == pytest.approx(float(post.image_threshold))
    assert pixel_thr == pytest.approx(float(post.pixel_threshold))
    # the rest of the checkpoint is MMEngine's: it still resumes
    ckpt = safe_load(str(tmp_path / 'work' / 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1 and 'optimizer' in ckpt
    assert ckpt['meta']['calibration'].startswith('calibrated: ')


def test_failed_calibration_keeps_the_trained_checkpoint(data, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError('calibration exploded')

    monkeypatch.setattr(calibration_hook, 'calibrate', broken)
    runner = _runner(data, tmp_path / 'work')
    with pytest.raises(RuntimeError, match='epoch_1.pth was saved before calibration'):
        runner.train()
    path = tmp_path / 'work' / 'epoch_1.pth'
    assert safe_load(str(path))['meta']['calibration'] == (
        'not calibrated: calibration failed: calibration exploded')
    model = _runner(data, tmp_path / 'other').model
    model.load_state_dict(safe_load(str(path))['state_dict'])  # the trained weights
    trained = runner.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items()
               if not k.startswith('postprocessor'))


def test_bad_calibration_settings_stop_before_training(data, tmp_path):
    cfg = merge_options(Config.fromfile(AE_CONFIG), tiny_ae_options(data, tmp_path / 'w', 1))
    hook = next(h for h in cfg.custom_hooks if h['type'].__name__ == 'CalibrationHook')
    assert hook['type'].__name__ == 'CalibrationHook'
    hook['dataset'] = dict(type='MVTecADDataset', data_root=str(tmp_path / 'no'), split='test')
    hook['inherit'] = False
    runner = Runner.from_cfg(disable_validation(cfg))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        runner.train()
    assert runner.iter == 0 and not (tmp_path / 'w' / 'epoch_1.pth').exists()


def test_an_earlier_checkpoint_is_not_overwritten(data, tmp_path):
    # epochs 1-3, a checkpoint every 2 epochs and none at the end: epoch_2.pth
    # holds epoch-2 weights and must not get the final model's state
    runner = _runner(data, tmp_path / 'work', **{
        'train_cfg.max_epochs': 3, 'train_cfg.val_interval': 3,
        'default_hooks.checkpoint.interval': 2, 'default_hooks.checkpoint.save_last': False})
    runner.train()
    path = tmp_path / 'work' / 'epoch_2.pth'
    assert not (tmp_path / 'work' / 'epoch_3.pth').exists()
    image_thr, _ = _thresholds(path)
    assert image_thr != image_thr  # untouched: not calibrated, and it says so
    assert safe_load(str(path))['meta']['calibration'] == (
        'not calibrated: calibration runs after the last training step')
    assert runner.model.postprocessor.has_threshold  # the model is
