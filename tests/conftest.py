"""Shared fixtures: a tiny MVTec-layout dataset generated on the fly."""
import csv
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get('PYTEST_XDIST_WORKER'):
    # parallel workers share the cores: one thread each (tools run as subprocesses get
    # OMP_NUM_THREADS=1 from run_tool)
    import torch
    torch.set_num_threads(1)
AE_CONFIG = str(ROOT / 'configs' / 'ae' / 'conv_ae_mvtec.py')


def make_mvtec(root, size=32, n_train=12, n_good=4, n_bad=4, seed=0, ext='.png',
               defect_value=255, width=None):
    """Normal images: smooth stripes with noise; defects: a flat square of
    ``defect_value`` (255: easy; mid-grey values: hard to see). Images are
    ``size`` x ``size``, or ``size`` high and ``width`` wide.

    Returns:
        the category folder.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    width = width or size
    yy, xx = np.mgrid[:size, :width]

    def normal():
        phase = rng.uniform(0, 2 * np.pi)
        base = 120 + 40 * np.sin(xx / 3.0 + phase)
        img = base + rng.normal(0, 4, (size, width))
        return np.clip(np.repeat(img[..., None], 3, 2), 0, 255).astype(np.uint8)

    for sub in ('train/good', 'test/good', 'test/spot', 'ground_truth/spot'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        cv2.imwrite(str(root / 'train/good' / f'{i:03d}{ext}'), normal())
    for i in range(n_good):
        cv2.imwrite(str(root / 'test/good' / f'{i:03d}{ext}'), normal())
    for i in range(n_bad):
        img = normal()
        mask = np.zeros((size, width), np.uint8)
        s = size // 4
        y, x = rng.integers(0, [size - s, width - s])
        img[y:y + s, x:x + s] = defect_value
        mask[y:y + s, x:x + s] = 255
        cv2.imwrite(str(root / 'test/spot' / f'{i:03d}{ext}'), img)
        cv2.imwrite(str(root / 'ground_truth/spot' / f'{i:03d}_mask.png'), mask)
    return str(root)


@pytest.fixture
def tiny_mvtec(tmp_path):
    return make_mvtec(tmp_path / 'cat')


def tiny_ae_options(data_root, work_dir=None, epochs=2):
    """--cfg-options that shrink the AE config to seconds."""
    opts = {
        'data_root': data_root, 'img_size': 32,
        'model.encoder.channels': [8, 16], 'model.encoder.latent_channels': 8,
        'model.decoder.latent_channels': 8, 'model.decoder.channels': [16, 8],
        'model.postprocess.sigma': 1.0,
        'train_dataloader.batch_size': 4, 'test_dataloader.batch_size': 4,
        'val_dataloader.batch_size': 4, 'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'default_hooks.logger.interval': 1,
    }
    if work_dir is not None:
        opts['work_dir'] = str(work_dir)
    return opts


def options_to_cli(opts):
    """Dict -> ``--cfg-options`` arguments."""
    out = []
    for k, v in opts.items():
        if isinstance(v, (list, tuple)):
            v = '[' + ','.join(str(x) for x in v) + ']'
        out.append(f'{k}={v}')
    return out


def run_tool(args, timeout=300):
    """Run ``python ARGS`` from the repository root; fail with its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def read_csv(path):
    """Rows of a CSV file with a header, as dicts."""
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def assert_test_and_infer_agree(config, ckpt, data, tmp_path, args, n_images):
    """``tools/test.py`` and ``tools/infer.py --recursive`` over ``<data>/test`` score
    every one of the ``n_images`` test images alike; returns infer's rows."""
    run_tool(['tools/test.py', config, ckpt, '--data-root', data,
              '--work-dir', str(tmp_path / 'test'), *args])
    tested = {r['image']: float(r['score'])
              for r in read_csv(tmp_path / 'test' / 'predictions.csv')}
    assert len(tested) == n_images
    run_tool(['tools/infer.py', config, ckpt, f'{data}/test', '--recursive',
              '--out', str(tmp_path / 'infer'), *args])
    inferred = read_csv(tmp_path / 'infer' / 'results.csv')
    assert len(inferred) == n_images
    for row in inferred:
        assert float(row['score']) == pytest.approx(tested[row['image']], rel=1e-5), row
    return inferred


def training_runner(config, options, resume_from=None):
    """A Runner of ``config`` merged with ``options`` that only trains: no
    validation, no calibration (only the training state matters), optionally
    resuming from a checkpoint."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from anomaly_plugin.engine import disable_validation, merge_options
    cfg = merge_options(Config.fromfile(str(ROOT / config)), options)
    disable_validation(cfg)
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h['type'].__name__ == 'PlainCheckpointHook']
    if resume_from:
        cfg.resume, cfg.load_from = True, str(resume_from)
    return Runner.from_cfg(cfg)


@contextmanager
def training_progress(**info):
    """The message hub reports a training loop at ``info`` (iter, epoch,
    max_epochs) inside the block; the previous values come back after."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    keys = ('loop_stage', 'iter', 'epoch', 'max_epochs')
    saved = {k: hub.get_info(k) for k in keys}
    try:
        hub.update_info('loop_stage', 'train')
        for k, v in info.items():
            hub.update_info(k, v)
        yield hub
    finally:
        for k, v in saved.items():
            hub.update_info(k, v)


class UnsafePayload:
    """Unpickling this runs ``os.system`` (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


__all__ = ['UnsafePayload', 'assert_test_and_infer_agree', 'read_csv', 'run_tool', 'AE_CONFIG',
           'ROOT', 'make_mvtec', 'tiny_ae_options', 'options_to_cli', 'training_runner',
           'training_progress']
