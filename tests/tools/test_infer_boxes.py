"""PatchCore on detected parts: BoxCropDataset through the Runner, tools/infer.py --boxes."""
import numpy as np
import pytest
from conftest import ROOT, make_box_scenes, options_to_cli, read_csv, run_tool
from mmengine.config import Config
from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401  (registers BoxCropDataset and PredictionDump)
from anomaly_plugin.engine import merge_options

PATCHCORE = 'configs/patchcore/patchcore_mobilenetv2_mvtec.py'
#: no pretrained weights (nothing downloads), 64x64 crops
OPTIONS = {'img_size': 64, 'model.backbone.backbone.init_cfg': None,
           'model.postprocess.sigma': 1.0}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """The MobileNetV2 PatchCore config fitted on the normal part crops, then tested."""
    tmp = tmp_path_factory.mktemp('box_patchcore')
    scenes = make_box_scenes(tmp / 'scenes')
    cfg = Config.fromfile(str(ROOT / PATCHCORE))
    merge_options(cfg, dict(OPTIONS, work_dir=str(tmp / 'work'), visualize=True,
                            **{'train_dataloader.batch_size': 6,
                               'test_dataloader.batch_size': 6}))
    boxes = dict(type='BoxCropDataset', data_root=scenes['root'], img_prefix='images', margin=0.1)
    cfg.train_dataloader.dataset = dict(boxes, ann_file='train.json', split='train',
                                        holdout_ratio=0.2,
                                        pipeline=cfg.train_dataloader.dataset.pipeline)
    cfg.test_dataloader.dataset = dict(boxes, ann_file='test.json', split='test',
                                       pipeline=cfg.test_dataloader.dataset.pipeline)
    dump = tmp / 'predictions.csv'
    cfg.test_evaluator = [*cfg.test_evaluator, dict(type='PredictionDump', out_file=str(dump))]
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    return dict(scenes=scenes, metrics=metrics, ckpt=str(tmp / 'work' / 'epoch_1.pth'),
                tested=read_csv(dump), tmp=tmp)


def test_patchcore_on_box_crops_finds_the_defective_parts(trained):
    metrics = trained['metrics']
    assert metrics['image/AUROC'] > 0.9, metrics
    assert metrics['pixel/AUROC'] > 0.9, metrics  # the polygon masks, on the crops
    assert len(trained['tested']) == len(trained['scenes']['truth']) == 12
    # one panel per box (the crop), not one per image
    panels = sorted(p.name for p in (trained['tmp'] / 'work' / 'vis').glob('*.png'))
    assert len(panels) == 12 and 'spot_test_0_box1.png' in panels, panels


def infer(trained, out, *args):
    scenes = trained['scenes']
    run_tool(['tools/infer.py', PATCHCORE, trained['ckpt'], f"{scenes['root']}/images",
              '--out', str(out), '--margin', '0.1', *args,
              '--cfg-options', *options_to_cli(OPTIONS)])
    return read_csv(out / 'results.csv')


def test_infer_boxes_scores_each_detection_and_pastes_the_maps(trained):
    scenes, out = trained['scenes'], trained['tmp'] / 'infer'
    rows = infer(trained, out, '--boxes', scenes['results'], '--ann-file', scenes['test'],
                 '--score-thr', '0.5')
    assert len(rows) == 12  # the 0.2-score background boxes are left out
    assert list(rows[0]) == ['image', 'box_id', 'x1', 'y1', 'x2', 'y2', 'category', 'det_score',
                             'score', 'norm_score', 'decision', 'heatmap', 'mask', 'error',
                             'warning']
    truth = scenes['truth']
    for row, t in zip(rows, truth):
        assert row['image'].endswith(t['file'].rsplit('/', 1)[-1])
        assert abs(float(row['x1']) - t['bbox'][0]) <= 1 and float(row['det_score']) == 0.9
        assert row['decision'] in ('OK', 'NG') and row['category'] in ('bolt', 'nut')
    bad = [float(r['score']) for r, t in zip(rows, truth) if t['anomaly']]
    good = [float(r['score']) for r, t in zip(rows, truth) if not t['anomaly']]
    assert np.mean(bad) > np.mean(good)
    for name in ('test_0.png', 'test_1.png', 'test_2.png'):  # scenes with defective parts
        amap = np.load(out / f'{name}_map.npy')  # (96, 128), 0 outside the crops
        assert amap.shape == (96, 128) and amap[0:4, 40:48].max() == 0
        y, x = np.unravel_index(amap.argmax(), amap.shape)
        inside = [t for t in truth if t['file'].endswith(name) and t['anomaly']
                  and t['bbox'][0] - 3 <= x < t['bbox'][0] + 31
                  and t['bbox'][1] - 3 <= y < t['bbox'][1] + 31]
        assert inside, (name, x, y)
        assert (out / f'{name}_heatmap.png').is_file() and (out / f'{name}_mask.png').is_file()


def test_infer_boxes_of_the_annotations_match_the_test_run(trained):
    # the COCO file itself as the boxes: the crops of BoxCropDataset, so the scores
    # of tools/infer.py are those of runner.test(), box by box
    rows = infer(trained, trained['tmp'] / 'infer_ann', '--boxes', trained['scenes']['test'])
    assert len(rows) == 12
    # predictions.csv of the test run names each box as infer does
    assert list(trained['tested'][0]) == ['image', 'box_id', 'x1', 'y1', 'x2', 'y2', 'category',
                                          'det_score', 'defect_type', 'gt_label', 'score',
                                          'norm_score', 'decision']
    for row, tested in zip(rows, trained['tested']):
        assert float(row['score']) == pytest.approx(float(tested['score']), rel=1e-4), row
        for key in ('image', 'box_id', 'category'):
            assert row[key] == tested[key], (row, tested)
        for key in ('x1', 'y1', 'x2', 'y2'):
            assert float(row[key]) == pytest.approx(float(tested[key])), (row, tested)
        assert tested['det_score'] == ''  # annotated boxes


def test_infer_boxes_reports_a_missing_image_and_goes_on(trained, tmp_path):
    scenes = trained['scenes']
    images = tmp_path / 'images'
    images.mkdir()
    for i in (0, 2, 3):  # test_1.png is missing
        (images / f'test_{i}.png').write_bytes((ROOT / scenes['root'] / 'images' /
                                                f'test_{i}.png').read_bytes())
    out = tmp_path / 'out'
    run_tool(['tools/infer.py', PATCHCORE, trained['ckpt'], str(images), '--out', str(out),
              '--boxes', scenes['test'], '--cfg-options', *options_to_cli(OPTIONS)])
    rows = read_csv(out / 'results.csv')
    errors = [r for r in rows if r['decision'] == 'error']
    assert len(rows) == 12 and len(errors) == 3
    assert all(r['image'].endswith('test_1.png') and 'not found' in r['error'] for r in errors)
