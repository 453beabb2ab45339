"""A real mmdet 3.3 project using the plugin (``make interop``, then ``make test-interop``).

One scenario, run with mmdet's own tools as a user runs them: the RetinaNet of
``configs/interop/mmdet/retinanet_mobilenetv2_parts.py`` is trained on
generated scenes of striped parts with mmdet's ``tools/train.py`` and run
over the test scenes with mmdet's ``tools/test.py`` (its COCO results JSON);
PatchCore (``configs/interop/patchcore_boxes_coco.py``) then takes its
backbone from the detector's checkpoint, is fitted on the detector's boxes of
the normal training parts with the plugin's ``tools/train.py`` and tested on
the detector's boxes of the test scenes.
Left out of ``make test``; skipped when mmdet or the compiled mmcv is missing.
"""
import copy
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, make_box_scenes, read_csv, run_tool

from anomaly_plugin.datasets.boxes import box_iou

pytestmark = pytest.mark.interop

DETECTOR = 'configs/interop/mmdet/retinanet_mobilenetv2_parts.py'
PATCHCORE = 'configs/interop/patchcore_boxes_coco.py'
IMAGENET = ROOT / 'checkpoints' / 'mobilenet_v2_imagenet_mmpretrain.pth'
EPOCHS = 24


def _mmdet_tools():
    """mmdet's own tools folder (``mmdet/.mim/tools``); skips without mmdet or mmcv.ops."""
    if importlib.util.find_spec('mmdet') is None:
        pytest.skip('needs mmdet 3.3 and a compiled mmcv (make interop)')
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as err:
        pytest.skip(f'mmdet needs a compiled mmcv, mmcv.ops does not import ({err}): '
                    'make interop')
    import mmdet
    if not IMAGENET.is_file():
        pytest.skip(f'{IMAGENET} missing: make weights')
    return os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'tools')


def _run(args):
    """``python ARGS`` from the repository root with two threads (conftest's run_tool)."""
    return run_tool(args, timeout=900, threads=2)


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """The detector trained and run over the test scenes with mmdet's tools."""
    tools = _mmdet_tools()
    tmp = tmp_path_factory.mktemp('mmdet_project')
    scenes = make_box_scenes(tmp / 'parts', n_train=48, n_test=6)
    root = tmp / 'parts'
    (root / 'annotations').mkdir()
    for split in ('train', 'test'):
        shutil.move(scenes[split], root / 'annotations' / f'{split}.json')
    work = tmp / 'detector'
    data = [f'{key}.dataset.data_root={root}/'
            for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    data += [f'{key}.ann_file={root}/annotations/test.json'
             for key in ('val_evaluator', 'test_evaluator')]
    log = _run([f'{tools}/train.py', DETECTOR, '--work-dir', str(work),
                '--cfg-options', *data])
    ckpt = work / f'epoch_{EPOCHS}.pth'
    assert ckpt.is_file(), log[-3000:]
    results = {}
    for split in ('train', 'test'):  # mmdet's test tool over each split's images
        prefix = tmp / f'{split}_detections'
        log = _run([f'{tools}/test.py', DETECTOR, str(ckpt),
                    '--work-dir', str(tmp / f'det_{split}'), '--cfg-options', *data,
                    f'test_dataloader.dataset.ann_file=annotations/{split}.json',
                    f'test_evaluator.ann_file={root}/annotations/{split}.json',
                    'test_evaluator.format_only=True', f'test_evaluator.outfile_prefix={prefix}'])
        results[split] = tmp / f'{split}_detections.bbox.json'
        assert results[split].is_file(), log[-3000:]
    return dict(root=root, truth=scenes['truth'], ckpt=ckpt, results=results['test'],
                train_results=results['train'], tmp=tmp)


def test_one_config_builds_the_detector_and_the_anomaly_model(project):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    cfg = Config.fromfile(str(ROOT / DETECTOR))  # custom_imports brings the plugin in
    assert 'anomaly_plugin' in sys.modules
    init_default_scope(cfg.default_scope)
    detector = MODELS.build(cfg.model)  # mmdet's RetinaNet
    load_checkpoint(detector, str(project['ckpt']), map_location='cpu')
    anomaly_cfg = copy.deepcopy(cfg.anomaly_model)
    anomaly_cfg.backbone.backbone.init_cfg.checkpoint = str(project['ckpt'])
    anomaly = MODELS.build(anomaly_cfg)  # 'anomaly_plugin.PatchCore' from mmdet's registry
    anomaly.init_weights()
    assert type(detector).__name__ == 'RetinaNet' and type(anomaly).__name__ == 'PatchCore'
    detector.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        stages = detector.backbone(x)  # out_indices (2, 4, 6)
        ours = anomaly.backbone.backbone(x)  # out_indices (2, 4): the same weights
    assert len(ours) == 2
    for a, b in zip(ours, stages[:2]):
        torch.testing.assert_close(a, b)


def test_the_detector_finds_every_part(project):
    detections = json.loads(project['results'].read_text())
    kept = [d for d in detections if d['score'] >= 0.5]
    truth = project['truth']  # 18 parts in 6 scenes
    assert len(kept) == len(truth), [round(d['score'], 2) for d in detections[:40]]
    categories = {(a['image_id'], tuple(a['bbox'])): a['category_id'] for a in json.loads(
        (project['root'] / 'annotations' / 'test.json').read_text())['annotations']}
    for t in truth:
        image_id = int(t['file'].rsplit('_', 1)[-1].split('.')[0]) + 1
        iou, best = max(((float(box_iou(d['bbox'], t['bbox'])[0, 0]), d) for d in kept
                         if d['image_id'] == image_id), key=lambda p: p[0])
        assert iou >= 0.5, (t, best)
        assert best['category_id'] == categories[image_id, tuple(t['bbox'])], (t, best)


@pytest.fixture(scope='module')
def patchcore(project):
    """PatchCore on the detector's backbone, fitted and tested on the detector's
    boxes (the normal parts of the training scenes, all parts of the test
    scenes) with the plugin's tools."""
    work = project['tmp'] / 'patchcore'
    options = [f"data_root={project['root']}", 'img_size=64',
               f"model.backbone.backbone.init_cfg.checkpoint={project['ckpt']}",
               'model.postprocess.sigma=1.0',
               f"train_dataloader.dataset.results_file={project['train_results']}"]
    _run(['tools/train.py', PATCHCORE, '--work-dir', str(work), '--cfg-options', *options])
    ckpt = work / 'epoch_1.pth'
    _run(['tools/test.py', PATCHCORE, str(ckpt), '--work-dir', str(work / 'test'),
          '--cfg-options', *options,
          f"test_dataloader.dataset.results_file={project['results']}"])
    metrics = json.loads((work / 'test' / 'metrics.json').read_text())
    return dict(options=options, ckpt=ckpt, metrics=metrics,
                tested=read_csv(work / 'test' / 'predictions.csv'))


def test_patchcore_on_the_detected_parts_finds_the_defects(project, patchcore):
    metrics, tested = patchcore['metrics'], patchcore['tested']
    assert len(tested) == len(project['truth'])  # one row per detected part
    assert metrics['image/AUROC'] > 0.9, metrics
    assert metrics['pixel/AUROC'] > 0.9, metrics


def test_infer_pastes_the_detected_parts_back(project, patchcore):
    out = project['tmp'] / 'infer'
    _run(['tools/infer.py', PATCHCORE, str(patchcore['ckpt']), str(project['root'] / 'images'),
          '--out', str(out), '--boxes', str(project['results']),
          '--ann-file', str(project['root'] / 'annotations' / 'test.json'),
          '--score-thr', '0.5', '--cfg-options', *patchcore['options']])
    rows = read_csv(out / 'results.csv')
    assert len(rows) == len(project['truth'])
    by_box = {}
    for t in project['truth']:
        by_box.setdefault(os.path.basename(t['file']), []).append(t)
    bad, good = [], []
    for row in rows:
        box = [float(row['x1']), float(row['y1'])]
        parts = by_box[os.path.basename(row['image'])]
        part = min(parts, key=lambda t: abs(t['bbox'][0] - box[0]) + abs(t['bbox'][1] - box[1]))
        (bad if part['anomaly'] else good).append(float(row['score']))
    assert len(bad) == 6
    pairs = [(b, g) for b in bad for g in good]
    assert sum(b > g for b, g in pairs) / len(pairs) > 0.9, (bad, good)  # AUROC
    # box by box, the scores of tools/test.py's run over the same results file
    tested = {(os.path.basename(r['image']), r['box_id']): r for r in patchcore['tested']}
    assert len(tested) == len(rows)
    for row in rows:
        other = tested[os.path.basename(row['image']), row['box_id']]
        assert float(row['score']) == pytest.approx(float(other['score']), rel=1e-4)
        assert float(row['det_score']) == pytest.approx(float(other['det_score']))
    amap = np.load(out / 'test_0.png_map.npy')
    assert amap.shape == (96, 128)
