"""Bad files of a dataset: all found before the first iteration, reported together,
or left out with skip_bad_files; files that fail only at full decoding stand in."""
import logging
import os

import cv2
import numpy as np
import pytest
from conftest import make_mvtec
from corpus import premature_jpeg, smooth

from anomaly_plugin.datasets import MVTecADDataset, file_check
from anomaly_plugin.datasets.file_check import (
    MAX_LISTED,
    BadFile,
    BadFilesError,
    report_bad_files,
    split_bad,
)

PIPELINE = [dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'),
            dict(type='PackAnomalyInputs')]


def spoil(root):
    """Bad files of every cheap kind in an MVTec category; returns their names."""
    good = root / 'train' / 'good'
    (good / 'empty.png').write_bytes(b'')
    (good / 'text.png').write_bytes(b'not an image')
    png = cv2.imencode('.png', smooth(32, 32, 0))[1].tobytes()
    (good / 'truncated.png').write_bytes(png[:len(png) // 2])
    os.symlink('loop.png', good / 'loop.png')
    os.mkfifo(good / 'pipe.png')
    return ['empty.png', 'text.png', 'truncated.png', 'loop.png', 'pipe.png']


def test_every_bad_training_file_is_listed_in_one_error(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=32, ext='.png')
    names = spoil(tmp_path / 'cat')
    with pytest.raises(BadFilesError) as info:
        MVTecADDataset(data_root=root, pipeline=PIPELINE)
    msg = str(info.value)
    assert msg.startswith(f'{len(names)} bad file(s) in MVTecADDataset split \'train\'')
    assert 'before the first iteration' in msg and 'skip_bad_files=True' in msg
    lines = {line.split(': ')[0].strip(): line for line in msg.splitlines()[1:]}
    for name in names:  # one line each, with its reason
        assert str(tmp_path / 'cat' / 'train' / 'good' / name) in lines
    assert 'empty (0 bytes)' in lines[str(tmp_path / 'cat' / 'train' / 'good' / 'empty.png')]
    assert 'not a file' in lines[str(tmp_path / 'cat' / 'train' / 'good' / 'pipe.png')]
    assert sorted(b.path for b in info.value.bad) == sorted(
        str(tmp_path / 'cat' / 'train' / 'good' / n) for n in names)


def test_skip_bad_files_leaves_them_out_with_a_warning(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(file_check, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs['level'])))
    root = make_mvtec(tmp_path / 'cat', size=32, ext='.png', n_train=12)
    names = spoil(tmp_path / 'cat')
    ds = MVTecADDataset(data_root=root, pipeline=PIPELINE, skip_bad_files=True)
    assert len(ds) == 12
    assert not any(os.path.basename(ds.get_data_info(i)['img_path']) in names
                   for i in range(len(ds)))
    (log, level), = logged
    assert level == logging.WARNING
    assert f'{len(names)} bad file(s)' in log and 'skipped (skip_bad_files=True)' in log
    assert all(n in log for n in names)


def test_masks_are_checked_with_their_images(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=32, ext='.png')
    gt = tmp_path / 'cat' / 'ground_truth' / 'spot'
    masks = sorted(gt.iterdir())
    cv2.imwrite(str(masks[0]), np.zeros((8, 8), np.uint8))  # wrong size
    masks[1].write_bytes(b'\x89PNG\r\n\x1a\n broken')  # undecodable
    with pytest.raises(BadFilesError) as info:
        MVTecADDataset(data_root=root, split='test', test_mode=True, pipeline=PIPELINE)
    msg = str(info.value)
    assert msg.startswith("2 bad file(s) in MVTecADDataset split 'test'")
    assert f'{masks[0]}: mask is 8x8 (HxW) but its image' in msg
    assert f'{masks[1]}: corrupt or truncated' in msg and '(the mask of' in msg


def test_long_lists_show_the_first_ones_and_the_count():
    bad = [BadFile(f'/data/{i:03d}.png', 'empty (0 bytes)') for i in range(MAX_LISTED + 10)]
    with pytest.raises(BadFilesError) as info:
        report_bad_files(bad, False, 'a set', 'checking')
    lines = str(info.value).splitlines()
    assert lines[0].startswith(f'{MAX_LISTED + 10} bad file(s) in a set')
    assert sum(line.startswith('  /data/') for line in lines) == MAX_LISTED
    assert f'... and 10 more ({MAX_LISTED + 10} in all)' in str(info.value)
    report_bad_files(bad, True, 'a set', 'checking')  # skip: no error
    report_bad_files([], False, 'a set', 'checking')  # nothing bad: nothing happens


def test_files_failing_only_at_full_decoding_stand_in(tmp_path):
    root = make_mvtec(tmp_path / 'cat', size=32, ext='.jpg', n_train=6)
    bad = tmp_path / 'cat' / 'train' / 'good' / '002.jpg'
    bad.write_bytes(premature_jpeg())  # header and end marker pass the cheap check
    train = MVTecADDataset(data_root=root, pipeline=PIPELINE)
    assert len(train) == 6  # not found up front
    sample = train[2]['data_samples']
    assert sample.img_path == train.get_data_info(3)['img_path']  # the next one stands in
    (path, reason), = sample.bad_files
    assert path == str(bad) and 'premature end of data segment' in reason
    assert 'bad_files' not in train[3]['data_samples']
    # testing: a blank stand-in of the file's size, marked for the metrics
    test_bad = tmp_path / 'cat' / 'test' / 'good' / '000.jpg'
    test_bad.write_bytes(premature_jpeg())
    test = MVTecADDataset(data_root=root, split='test', test_mode=True, pipeline=PIPELINE)
    idx = next(i for i in range(len(test))
               if test.get_data_info(i)['img_path'] == str(test_bad))
    data = test[idx]
    assert data['data_samples'].img_path == str(test_bad)
    assert data['inputs'].shape == (3, 48, 64) and not data['inputs'].any()
    assert data['data_samples'].bad_files[0][0] == str(test_bad)
    good, found = split_bad([dict(score=1.0), dict(bad_files=[(str(test_bad), 'x')]), None])
    assert good == [dict(score=1.0), None] and found == [BadFile(str(test_bad), 'x')]
