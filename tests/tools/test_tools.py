"""tools/train.py, test.py and infer.py as a user runs them (subprocesses)."""
import csv
import json
import os
import subprocess
import sys

import cv2
import pytest
import torch
from conftest import AE_CONFIG, ROOT, make_mvtec, options_to_cli, run_tool, tiny_ae_options

KEYS = {'image/AUROC', 'image/AP', 'image/F1max', 'pixel/AUROC', 'pixel/AP',
        'pixel/F1max', 'pixel/AUPRO'}


run = run_tool


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tools')
    data = make_mvtec(tmp / 'cat', size=40, ext='.jpg')
    work = tmp / 'work'
    opts = tiny_ae_options(data)
    run(['tools/train.py', AE_CONFIG, '--work-dir', str(work), '--no-validate',
         '--cfg-options', *options_to_cli(opts)])
    ckpt = work / 'epoch_2.pth'
    assert ckpt.exists()
    return dict(tmp=tmp, data=data, work=work, ckpt=ckpt, opts=opts)


def test_checkpoint_holds_calibration_and_plain_state(trained):
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(trained['ckpt'])) == []
    state = torch.load(trained['ckpt'], weights_only=True)['state_dict']
    for k in ('image_threshold', 'pixel_threshold', 'pixel_min', 'pixel_max'):
        assert torch.isfinite(state[f'postprocessor.{k}'])


def test_test_tool_writes_metrics_json_and_panels(trained):
    work = trained['tmp'] / 'test_work'
    opts = {k: v for k, v in trained['opts'].items() if k != 'data_root'}
    out = run(['tools/test.py', AE_CONFIG, str(trained['ckpt']), '--work-dir', str(work),
               '--data-root', trained['data'], '--visualize',
               '--cfg-options', *options_to_cli(opts)])
    metrics = json.loads((work / 'metrics.json').read_text())
    assert set(metrics) == KEYS
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert 'pixel/AUPRO' in out
    panels = sorted(os.listdir(work / 'vis'))
    assert len(panels) == 8  # 4 good + 4 defective test images
    panel = cv2.imread(str(work / 'vis' / panels[0]))
    assert panel.shape == (40 + 20, 4 * 40, 3)  # original size, 4 tiles


def test_test_tool_refuses_a_checkpoint_of_another_model(trained):
    opts = dict(trained['opts'], **{'model.encoder.latent_channels': 4,
                                    'model.decoder.latent_channels': 4})
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', AE_CONFIG, str(trained['ckpt']),
         '--work-dir', str(trained['tmp'] / 'wrong_model'),
         '--cfg-options', *options_to_cli(opts)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{trained['ckpt']} does not fit the model" in proc.stderr
    assert 'size mismatch' in proc.stderr
    assert not (trained['tmp'] / 'wrong_model' / 'metrics.json').exists()


def test_infer_tool(trained):
    out_dir = trained['tmp'] / 'infer'
    images = os.path.join(trained['data'], 'test', 'spot')
    # the config dumped in the work dir carries the training overrides
    run(['tools/infer.py', str(trained['work'] / 'conv_ae_mvtec.py'),
         str(trained['ckpt']), images, '--out', str(out_dir)])
    rows = json.loads((out_dir / 'results.json').read_text())
    assert len(rows) == 4
    assert {r['decision'] for r in rows} <= {'OK', 'NG'}
    with open(out_dir / 'results.csv') as f:
        assert len(list(csv.DictReader(f))) == 4
    heat = cv2.imread(str(out_dir / '000.jpg_heatmap.png'))
    mask = cv2.imread(str(out_dir / '000.jpg_mask.png'), cv2.IMREAD_UNCHANGED)
    assert heat.shape == (40, 40, 3) and mask.shape == (40, 40)  # original size
    assert set(mask.ravel().tolist()) <= {0, 255}


def test_resume_and_amp(trained):
    work = trained['tmp'] / 'resume'
    opts = dict(trained['opts'], **{'train_cfg.max_epochs': 1})
    run(['tools/train.py', AE_CONFIG, '--work-dir', str(work), '--no-validate',
         '--cfg-options', *options_to_cli(opts)])
    opts['train_cfg.max_epochs'] = 2
    out = run(['tools/train.py', AE_CONFIG, '--work-dir', str(work), '--no-validate',
               '--resume', '--amp', '--cfg-options', *options_to_cli(opts)])
    assert 'resumed epoch: 1' in out
    assert 'bfloat16' in out
    assert (work / 'epoch_2.pth').exists()
    ckpt = torch.load(work / 'epoch_2.pth', weights_only=True)
    assert ckpt['meta']['epoch'] == 2
