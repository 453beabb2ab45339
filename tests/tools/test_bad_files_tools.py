"""Bad files in a user's category through tools/train.py and tools/test.py: all of
them reported in one error before the first iteration; files that fail only when
decoded in full reported together at the end of the pass; skip_bad_files goes on."""
import os

import cv2
import numpy as np
import pytest
from conftest import (
    AE_CONFIG,
    make_mvtec,
    options_to_cli,
    run_failing,
    run_tool,
    tiny_ae_options,
)
from corpus import premature_jpeg
from mmengine.config import Config

from anomaly_plugin.datasets.file_check import BadFilesError
from anomaly_plugin.engine import check_data_files, load_tool_config

PADIM = 'configs/padim/padim_mobilenetv2_mvtec.py'
NO_WEIGHTS = 'model.backbone.backbone.init_cfg=None'


def spoil_every_split(root):
    """Cheap-to-find bad files in train, test and ground truth; returns their paths."""
    bad = [root / 'train' / 'good' / 'empty.png', root / 'train' / 'good' / 'text.png',
           root / 'train' / 'good' / 'loop.png', root / 'test' / 'good' / 'truncated.png',
           root / 'ground_truth' / 'spot' / '000_mask.png']
    bad[0].write_bytes(b'')
    bad[1].write_bytes(b'not an image')
    os.symlink('loop.png', bad[2])
    png = cv2.imencode('.png', np.full((32, 32, 3), 128, np.uint8))[1].tobytes()
    bad[3].write_bytes(png[:40])
    cv2.imwrite(str(bad[4]), np.zeros((8, 8), np.uint8))  # wrong size
    return [str(p) for p in bad]


def test_every_split_is_checked_before_training_in_one_error(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=32)
    bad = spoil_every_split(tmp_path / 'cat')
    opts = tiny_ae_options(root, tmp_path / 'work', epochs=1)
    opts['train_dataloader.dataset.holdout_ratio'] = 0.2
    cfg = load_tool_config(AE_CONFIG, opts)
    with pytest.raises(BadFilesError) as info:
        check_data_files(cfg)
    msg = str(info.value)
    assert msg.startswith(f'{len(bad)} bad file(s) in the data of this run')
    assert sorted(b.path for b in info.value.bad) == sorted(bad)
    assert '[train_dataloader' in msg and '[val_dataloader]' in msg
    assert 'mask is 8x8 (HxW)' in msg and 'empty (0 bytes)' in msg
    with pytest.raises(BadFilesError) as info:  # tools/test.py: the test split only
        check_data_files(cfg, ['test_dataloader'])
    assert sorted(b.path for b in info.value.bad) == sorted(bad[3:])
    # the tool: one error, no iteration run
    proc = run_failing(['tools/train.py', AE_CONFIG, '--cfg-options', *options_to_cli(opts)])
    assert f'{len(bad)} bad file(s) in the data of this run' in proc.stderr
    assert all(p in proc.stderr for p in bad)
    assert not list((tmp_path / 'work').rglob('*.pth'))


def test_files_failing_at_full_decoding_are_reported_after_the_first_pass(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=32, ext='.jpg', n_train=8)
    spoiled = [tmp_path / 'cat' / 'train' / 'good' / f'{i:03d}.jpg' for i in (2, 5)]
    for p in spoiled:
        p.write_bytes(premature_jpeg(size=(32, 32)))  # pass the cheap checks
    opts = tiny_ae_options(root, tmp_path / 'work', epochs=2)
    opts['train_dataloader.dataset.holdout_ratio'] = 0  # both spoiled files are trained on
    proc = run_failing(['tools/train.py', AE_CONFIG, '--no-validate',
                        '--cfg-options', *options_to_cli(opts)])
    assert '2 bad file(s) in MVTecADDataset split \'train\'' in proc.stderr
    assert 'found decoding the first pass over the data' in proc.stderr
    assert all(str(p) in proc.stderr and 'premature end of data segment' in proc.stderr
               for p in spoiled)
    assert 'Epoch(train) [2]' not in proc.stdout + proc.stderr  # stopped after the pass
    # skip_bad_files: trained on the others, the files named in a warning
    opts['train_dataloader.dataset.skip_bad_files'] = True
    (tmp_path / 'cat' / 'train' / 'good' / 'empty.jpg').write_bytes(b'')  # cheap kind too
    log = run_tool(['tools/train.py', AE_CONFIG, '--no-validate',
                    '--cfg-options', *options_to_cli(opts)])
    assert "1 bad file(s) in MVTecADDataset split 'train'" in log  # the up-front one
    assert 'skipped (skip_bad_files=True)' in log
    assert all(str(p) in log for p in spoiled)
    assert (tmp_path / 'work' / 'epoch_2.pth').exists()


def test_tools_test_reports_test_images_failing_at_full_decoding(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=32, ext='.jpg')
    opts = tiny_ae_options(root, tmp_path / 'work', epochs=1)
    run_tool(['tools/train.py', AE_CONFIG, '--no-validate', '--cfg-options',
              *options_to_cli(opts)])
    ckpt = str(tmp_path / 'work' / 'epoch_1.pth')
    spoiled = tmp_path / 'cat' / 'test' / 'spot' / '001.jpg'
    spoiled.write_bytes(premature_jpeg(size=(32, 32)))
    test_opts = {k: v for k, v in opts.items() if k != 'work_dir'}
    proc = run_failing(['tools/test.py', AE_CONFIG, ckpt, '--work-dir', str(tmp_path / 't1'),
                        '--cfg-options', *options_to_cli(test_opts)])
    assert '1 bad file(s) in the test data, found decoding the test pass' in proc.stderr
    assert str(spoiled) in proc.stderr
    test_opts['test_dataloader.dataset.skip_bad_files'] = True
    log = run_tool(['tools/test.py', AE_CONFIG, ckpt, '--work-dir', str(tmp_path / 't2'),
                    '--cfg-options', *options_to_cli(test_opts)])
    assert 'skipped (skip_bad_files=True)' in log and str(spoiled) in log
    rows = (tmp_path / 't2' / 'predictions.csv').read_text().splitlines()
    assert len(rows) == 1 + 4 + 4 - 1  # header, the test images but the bad one
    assert str(spoiled) not in '\n'.join(rows)


def test_fit_loop_reports_files_failing_at_full_decoding(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=64, ext='.jpg', n_train=6, n_good=2, n_bad=2)
    spoiled = tmp_path / 'cat' / 'train' / 'good' / '003.jpg'
    spoiled.write_bytes(premature_jpeg(size=(64, 64)))
    proc = run_failing(['tools/train.py', PADIM, '--work-dir', str(tmp_path / 'work'),
                        '--no-validate', '--cfg-options', f'data_root={root}', NO_WEIGHTS,
                        'train_dataloader.dataset.holdout_ratio=0'])
    assert "1 bad file(s) in MVTecADDataset split 'train'" in proc.stderr
    assert 'found decoding the pass over the data' in proc.stderr and str(spoiled) in proc.stderr
    assert Config.fromfile(PADIM).train_cfg.type.__name__ == 'FitLoop'


def test_pretrained_weights_that_cannot_be_downloaded_get_a_clear_error(tmp_path):
    """tools/train.py with a backbone whose weights URL cannot be reached (nothing
    listens on port 9 of this machine): the error names the URL, where the file is
    looked up and the key to point at a local copy, not a urllib traceback."""
    root = make_mvtec(tmp_path / 'cat', size=32)
    url = 'http://127.0.0.1:9/weights/unreachable-0000.pth'
    key = 'model.backbone.backbone.init_cfg.checkpoint'
    env = dict(os.environ, TORCH_HOME=str(tmp_path / 'torch'))
    proc = run_failing(['tools/train.py', PADIM, '--data-root', str(root), '--work-dir',
                        str(tmp_path / 'work'), '--cfg-options', f'{key}={url}',
                        'img_size=32'], env=env)
    assert 'needs pretrained weights that could not be downloaded' in proc.stderr
    assert f'{url}: put the file at {tmp_path / "torch" / "hub" / "checkpoints"}' in proc.stderr
    assert f'{key}=LOCAL_PATH' in proc.stderr
    assert 'Traceback' not in proc.stderr.split('needs pretrained weights')[-1]
