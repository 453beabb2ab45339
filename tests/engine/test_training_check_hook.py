"""TrainingCheckHook: the loss must fall and the maps must find an obvious painted
defect on held-out normal images; otherwise a warning with the numbers."""
import logging
from types import SimpleNamespace

import pytest
import torch
from conftest import AE_CONFIG, make_mvtec, tiny_ae_options
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope

from anomaly_plugin.engine import merge_options
from anomaly_plugin.engine.hooks import training_check_hook
from anomaly_plugin.engine.hooks.training_check_hook import TrainingCheckHook, paint_squares
from anomaly_plugin.registry import MODELS


def test_painted_squares_contrast_with_their_region():
    bright = torch.full((3, 30, 40), 200, dtype=torch.uint8)
    dark = torch.full((3, 30, 40), 20, dtype=torch.uint8)
    (pb, pd), (mb, md) = paint_squares([bright, dark], 1 / 6, seed=0)
    assert int(mb.sum()) == int(md.sum()) == 5 * 5
    assert (pb[:, mb] == 0).all() and (pb[:, ~mb] == 200).all()  # black on bright
    assert (pd[:, md] == 255).all() and (pd[:, ~md] == 20).all()  # white on dark
    assert (bright == 200).all()  # the inputs are not changed


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    data = make_mvtec(tmp_path_factory.mktemp('check') / 'cat', size=32, n_train=10)
    cfg = merge_options(Config.fromfile(AE_CONFIG), tiny_ae_options(data))
    init_default_scope('anomaly_plugin')
    model = MODELS.build(cfg.model)
    return cfg, model


def run_hook(cfg, model, monkeypatch, losses=(), **kwargs):
    logged = []
    monkeypatch.setattr(training_check_hook, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw.get('level'))))
    hub = MessageHub(f'check_{id(logged)}')
    for value in losses:
        hub.update_scalar('train/loss', value)
    hook = TrainingCheckHook(**kwargs)
    hook.after_train(SimpleNamespace(cfg=cfg, model=model, message_hub=hub))
    warnings = [m for m, level in logged if level == logging.WARNING]
    return hook, warnings


def deviation(inputs):  # (B, 3, H, W) -> (B, 1, H, W): distance from the image's median
    med = inputs.flatten(2).median(dim=2).values[..., None, None]
    return (inputs - med).abs().sum(1, keepdim=True)


def test_maps_that_find_the_square_pass(setup, monkeypatch):
    cfg, model = setup
    monkeypatch.setattr(model, 'anomaly_map', deviation)
    hook, warnings = run_hook(cfg, model, monkeypatch, losses=[1.0] * 10 + [0.5] * 10)
    assert hook.results['synthetic_pixel_auroc'] > 0.95
    assert warnings == []


def test_maps_pointing_away_from_the_square_are_reported(setup, monkeypatch):
    cfg, model = setup
    monkeypatch.setattr(model, 'anomaly_map', lambda x: -deviation(x))
    hook, warnings = run_hook(cfg, model, monkeypatch)
    assert hook.results['synthetic_pixel_auroc'] < 0.05
    (msg,) = warnings
    assert 'points away from it' in msg and 'pixel AUROC 0.0' in msg
    assert 'checkpoint is kept as trained' in msg


def test_a_loss_that_did_not_fall_is_reported(setup, monkeypatch):
    cfg, model = setup
    monkeypatch.setattr(model, 'anomaly_map', deviation)
    losses = [0.5 + 0.01 * (i % 3) for i in range(40)]
    hook, warnings = run_hook(cfg, model, monkeypatch, losses=losses)
    (msg,) = warnings
    assert "the training loss 'loss' has not fallen" in msg and '40 steps' in msg
    assert hook.results['loss/first'] == pytest.approx(sum(losses[:4]) / 4)


def test_a_failing_check_never_fails_training(setup, monkeypatch):
    cfg, model = setup

    def broken(inputs):
        raise RuntimeError('boom')

    monkeypatch.setattr(model, 'anomaly_map', broken)
    _, warnings = run_hook(cfg, model, monkeypatch)
    assert warnings == ['TrainingCheckHook: the check could not run: boom']
