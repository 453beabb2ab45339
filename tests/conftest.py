"""Shared fixtures: a tiny MVTec-layout dataset generated on the fly."""
import csv
import json
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


#: parts of every box scene: (category id, slot x range, slot y range); the last part
#: touches the right border, so its margin is clipped
BOX_SLOTS = ((1, (6, 10), (8, 14)), (2, (48, 54), (40, 48)), (1, (100, 100), (60, 66)))
BOX_CATEGORIES = [dict(id=1, name='bolt'), dict(id=2, name='nut'), dict(id=3, name='scratch')]


def make_box_scenes(root, n_train=6, n_test=4, part=28, defect=8, seed=0):
    """Scenes (96x128) of 3 striped parts on a noisy background, with COCO files.

    Bolts (category 1) have vertical stripes, nuts (2) horizontal ones; in test
    scene ``i < 3`` parts ``i % 3`` and ``(i + 1) % 3`` carry a white
    ``defect`` x ``defect`` square, the other scenes are normal. Writes
    ``images/{train,test}_<i>.png``, ``train.json`` / ``test.json`` (COCO:
    ``anomaly`` 0/1, ``defect_type`` and, for anomalous parts, a
    ``defect_segmentation`` polygon of the square), ``masks/<stem>_mask.png``
    (full-image masks of the defective test scenes) and ``results.json``
    (mmdet COCO results for the test scenes: each part's box shifted by up
    to 1 px with score 0.9, plus a background box with score 0.2).

    Returns:
        dict of ``root``, ``train``, ``test``, ``results`` (file paths) and
        ``truth``: per test annotation ``file``, ``bbox``, ``anomaly`` and
        ``square`` (x, y, size) or None.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'masks').mkdir(exist_ok=True)
    height, width = 96, 128
    yy, xx = np.mgrid[:part, :part]
    truth, results = [], []

    def scene(split, i, defective):
        img = np.clip(60 + rng.normal(0, 3, (height, width)), 0, 255)
        mask = np.zeros((height, width), np.uint8)
        name = f'{split}_{i}.png'
        image = dict(id=i + 1, file_name=name, width=width, height=height)
        anns = []
        for k, (cat, (xa, xb), (ya, yb)) in enumerate(BOX_SLOTS):
            x, y = int(rng.integers(xa, xb + 1)), int(rng.integers(ya, yb + 1))
            phase = rng.uniform(0, 2 * np.pi)
            coord = xx if cat == 1 else yy
            img[y:y + part, x:x + part] = 150 + 50 * np.sin(coord / 2.0 + phase) \
                + rng.normal(0, 3, (part, part))
            bbox = [x, y, part, part]
            ann = dict(id=len(anns) + 1 + 10 * i, image_id=i + 1, category_id=cat, bbox=bbox,
                       area=part * part, iscrowd=0, anomaly=int(k in defective),
                       defect_type='spot' if k in defective else 'good')
            square = None
            if k in defective:
                dx, dy = rng.integers(2, part - defect - 2, 2)
                sx, sy = x + int(dx), y + int(dy)
                img[sy:sy + defect, sx:sx + defect] = 255
                mask[sy:sy + defect, sx:sx + defect] = 255
                ann['defect_segmentation'] = [[sx, sy, sx + defect, sy, sx + defect,
                                               sy + defect, sx, sy + defect]]
                square = (sx, sy, defect)
            anns.append(ann)
            if split == 'test':
                truth.append(dict(file=str(root / 'images' / name), bbox=bbox,
                                  anomaly=int(k in defective), square=square))
                jx, jy = rng.integers(-1, 2, 2)
                results.append(dict(image_id=i + 1, bbox=[x + int(jx), y + int(jy), part, part],
                                    score=0.9, category_id=cat))
        if split == 'test':
            results.append(dict(image_id=i + 1, bbox=[90, 4, 20, 20], score=0.2, category_id=2))
        gray = np.repeat(img.astype(np.uint8)[..., None], 3, 2)
        cv2.imwrite(str(root / 'images' / name), gray)
        if defective:
            cv2.imwrite(str(root / 'masks' / f'{split}_{i}_mask.png'), mask)
        return image, anns

    out = dict(root=str(root), truth=truth)
    for split, n in (('train', n_train), ('test', n_test)):
        images, anns = [], []
        for i in range(n):
            defective = {i % 3, (i + 1) % 3} if split == 'test' and i < 3 else set()
            image, a = scene(split, i, defective)
            images.append(image)
            anns += a
        out[split] = str(root / f'{split}.json')
        with open(out[split], 'w') as f:
            json.dump(dict(images=images, annotations=anns, categories=BOX_CATEGORIES), f)
    out['results'] = str(root / 'results.json')
    with open(out['results'], 'w') as f:
        json.dump(results, f)
    return out


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
        'train_cfg.min_iters': 0,
        'train_cfg.val_interval': epochs,
        'default_hooks.logger.interval': 1,
    }
    if work_dir is not None:
        opts['work_dir'] = str(work_dir)
    return opts


VISA_SIZE = (8, 12)
VISA_HEADER = 'object,split,label,image,mask\n'


def _write_image(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def make_visa(root, mask_value=1):
    """Tiny VisA tree with categories candle and pcb1 and its 1cls.csv."""
    img = np.full(VISA_SIZE + (3,), 60, np.uint8)
    mask = np.zeros(VISA_SIZE, np.uint8)
    mask[1:4, 2:7] = mask_value
    rows = []
    for obj in ('candle', 'pcb1'):
        base = f'{obj}/Data'
        for i in range(4):
            rel = f'{base}/Images/Normal/{i:04d}.JPG'
            _write_image(root / rel, img)
            rows.append(f'{obj},train,normal,{rel},')
        rel = f'{base}/Images/Normal/0100.JPG'
        _write_image(root / rel, img)
        rows.append(f'{obj},test,normal,{rel},')
        for i in range(2):
            rel = f'{base}/Images/Anomaly/{i:03d}.JPG'
            mrel = f'{base}/Masks/Anomaly/{i:03d}.png'
            _write_image(root / rel, img)
            _write_image(root / mrel, mask)
            rows.append(f'{obj},test,anomaly,{rel},{mrel}')
    csv_path = root / 'split_csv' / '1cls.csv'
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(VISA_HEADER + '\n'.join(rows) + '\n')
    return (mask > 0).astype(np.uint8), csv_path


def drop_pretrained(node):
    """Remove every ``Pretrained`` init_cfg in a (nested) model config."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            drop_pretrained(value)


def options_to_cli(opts):
    """Dict -> ``--cfg-options`` arguments."""
    out = []
    for k, v in opts.items():
        if isinstance(v, (list, tuple)):
            v = '[' + ','.join(str(x) for x in v) + ']'
        out.append(f'{k}={v}')
    return out


def run_tool(args, timeout=300, threads=1):
    """Run ``python ARGS`` from the repository root; fail with its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def run_failing(args, timeout=300, env=None):
    """Run ``python ARGS`` from the repository root (in ``env``, the environment
    by default); it must fail."""
    env = dict(env or os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


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


def assert_train_test_infer_agree(config, data, tmp_path, options, n_images):
    """Train ``config`` with ``tools/train.py`` (``options`` as ``--cfg-options``), check
    that the checkpoint is calibrated and that ``tools/test.py`` and ``tools/infer.py``
    score the ``n_images`` test images alike with OK/NG decisions.

    Returns:
        ``tools/train.py``'s output.
    """
    import torch

    from anomaly_plugin.engine import safe_load
    work = tmp_path / 'work'
    cli = ['--cfg-options', *options_to_cli(options)]
    out = run_tool(['tools/train.py', config, '--data-root', data, '--work-dir', str(work),
                    *cli])
    ckpt = str(work / 'epoch_1.pth')
    assert torch.isfinite(safe_load(ckpt)['state_dict']['postprocessor.image_threshold'])
    rows = assert_test_and_infer_agree(config, ckpt, data, tmp_path, cli, n_images)
    assert {r['decision'] for r in rows} <= {'OK', 'NG'}
    return out


def assert_resume_is_exact(config, options, tmp_path):
    """Training ``config`` for 2 epochs straight and resumed from its first
    epoch's checkpoint gives identical state dicts, and the second epoch trained.

    Args:
        config: the config path (relative to the repository).
        options: ``options(epochs) -> dict`` of options (data root included).
        tmp_path: work folder.
    """
    import torch

    from anomaly_plugin.engine import safe_load

    def runner(work, resume_from=None):
        opts = {**options(2), 'work_dir': str(work),
                'default_hooks.checkpoint.max_keep_ckpts': -1}
        return training_runner(config, opts, resume_from)

    runner(tmp_path / 'a').train()
    runner(tmp_path / 'b', resume_from=tmp_path / 'a' / 'epoch_1.pth').train()
    a = safe_load(str(tmp_path / 'a' / 'epoch_2.pth'))['state_dict']
    b = safe_load(str(tmp_path / 'b' / 'epoch_2.pth'))['state_dict']
    assert a.keys() == b.keys()
    for k, v in a.items():  # thresholds: NaN in both (no calibration)
        torch.testing.assert_close(v, b[k], rtol=0, atol=0, equal_nan=True, msg=k)
    first = safe_load(str(tmp_path / 'a' / 'epoch_1.pth'))['state_dict']
    assert any(not torch.equal(v, first[k]) for k, v in a.items())  # it trained


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
           'ROOT', 'make_box_scenes', 'make_mvtec', 'tiny_ae_options', 'options_to_cli',
           'training_runner', 'training_progress']
