"""AnomalyInferencer on a tiny autoencoder trained by tools/train.py."""
import os

import cv2
import numpy as np
import pytest
import torch
from conftest import AE_CONFIG, UnsafePayload, make_mvtec, options_to_cli, run_tool, tiny_ae_options
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import init_default_scope

import anomaly_plugin  # noqa: F401  (registers the modules)
from anomaly_plugin.apis import AnomalyInferencer, checkpoint_error_message, init_detector
from anomaly_plugin.datasets.image_io import read_image
from anomaly_plugin.engine.checkpoint import UnsafeCheckpointError
from anomaly_plugin.registry import DATASETS, INFERENCERS
from anomaly_plugin.structures import AnomalyDataSample


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('inferencer')
    data = make_mvtec(tmp / 'cat', size=32)
    work = tmp / 'work'
    run_tool(['tools/train.py', AE_CONFIG, '--work-dir', str(work), '--no-validate',
              '--cfg-options', *options_to_cli(tiny_ae_options(data, epochs=1))])
    config, ckpt = work / 'conv_ae_mvtec.py', work / 'epoch_1.pth'
    assert ckpt.exists()
    return dict(tmp=tmp, data=data, config=str(config), ckpt=str(ckpt),
                inferencer=AnomalyInferencer(str(config), str(ckpt), device='cpu'))


@pytest.fixture(scope='module')
def test_set(trained):
    """(paths, scores, labels) of the test split as the test loop predicts them."""
    cfg = Config.fromfile(trained['config'])
    init_default_scope('anomaly_plugin')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    model = init_detector(cfg, trained['ckpt'])
    samples = model.test_step(pseudo_collate([dataset[i] for i in range(len(dataset))]))
    return ([s.img_path for s in samples], [float(s.pred_score) for s in samples],
            [int(s.pred_label) for s in samples])


def test_scores_equal_the_test_loop(trained, test_set):
    paths, scores, labels = test_set
    assert len(paths) == 8
    out = trained['inferencer'](paths, batch_size=3, return_maps=True)
    preds = out['predictions']
    assert [p['img_path'] for p in preds] == paths
    assert [p['pred_score'] for p in preds] == pytest.approx(scores, rel=1e-5)
    assert [p['pred_label'] for p in preds] == labels  # the checkpoint is calibrated
    assert all(p['error'] is None and 0.0 <= p['norm_score'] <= 1.0 for p in preds)
    for p in preds:
        assert p['anomaly_map'].shape == (32, 32) and p['anomaly_map'].dtype == np.float32
        assert set(np.unique(p['pred_mask']).tolist()) <= {0, 1}
    assert out['visualization'] == []  # nothing drawn unless asked


def test_unreadable_files_give_errors_and_the_rest_is_scored(trained, test_set, tmp_path):
    paths, scores, _ = test_set
    truncated = tmp_path / 'truncated.png'
    png = cv2.imencode('.png', read_image(paths[0]))[1].tobytes()
    truncated.write_bytes(png[:len(png) // 2])
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    missing = tmp_path / 'missing.png'
    inputs = [paths[0], str(truncated), paths[1], str(empty), paths[2], str(missing)]
    preds = trained['inferencer'](inputs, batch_size=2)['predictions']
    assert [p['img_path'] for p in preds] == inputs
    assert 'corrupt or truncated' in preds[1]['error'] and preds[1]['pred_score'] is None
    assert 'empty (0 bytes)' in preds[3]['error']
    assert 'not found' in preds[5]['error']
    good = [p['pred_score'] for p in preds[0::2]]
    assert good == pytest.approx(scores[:3], rel=1e-5)
    samples = trained['inferencer'](inputs, return_datasamples=True, batch_size=4)['predictions']
    assert all(isinstance(s, AnomalyDataSample) for s in samples)
    assert isinstance(samples[1].exception, ValueError) and samples[1].error == preds[1]['error']
    assert float(samples[2].pred_score) == pytest.approx(scores[1], rel=1e-5)
    assert samples[2].anomaly_map.shape == (32, 32)


def test_numpy_arrays_and_folders(trained, test_set, tmp_path):
    paths, scores, _ = test_set
    inferencer = trained['inferencer']
    rgb = read_image(paths[4])  # (32, 32, 3) RGB
    gray = np.full((20, 24), 140, np.uint8)
    preds = inferencer([rgb, paths[4], gray, rgb.astype(np.float32)])['predictions']
    assert preds[0]['img_path'] is None and preds[0]['error'] is None
    assert preds[0]['pred_score'] == pytest.approx(scores[4], rel=1e-5)
    assert preds[0]['pred_score'] == pytest.approx(preds[1]['pred_score'], rel=1e-6)
    assert preds[2]['error'] is None and np.isfinite(preds[2]['pred_score'])
    assert 'uint8' in preds[3]['error']
    maps = inferencer(gray, return_maps=True)['predictions'][0]
    assert maps['anomaly_map'].shape == (20, 24)  # the array's own size
    batch = inferencer(np.stack([rgb, rgb]))['predictions']  # (N, H, W, 3)
    assert len(batch) == 2 and batch[1]['pred_score'] == pytest.approx(scores[4], rel=1e-5)
    folder = tmp_path / 'folder'
    folder.mkdir()
    for name in ('b.png', 'a.png', '.hidden.png'):
        cv2.imwrite(str(folder / name), cv2.imread(paths[5]))
    listed = inferencer(str(folder))['predictions']
    assert [p['img_path'] for p in listed] == [str(folder / 'a.png'), str(folder / 'b.png')]
    assert listed[0]['pred_score'] == pytest.approx(scores[5], rel=1e-5)


def test_out_dir_gets_panels(trained, test_set, tmp_path):
    paths, _, _ = test_set
    other = tmp_path / 'wide.png'  # another size than the model input
    cv2.imwrite(str(other), cv2.resize(cv2.imread(paths[6]), (48, 40)))
    array = read_image(paths[7])
    out = trained['inferencer']([paths[6], str(other), array, str(tmp_path / 'nope.png')],
                                batch_size=2, out_dir=str(tmp_path / 'vis'), return_vis=True)
    # names relative to the deepest folder common to the files
    root = os.path.commonpath([os.path.dirname(paths[6]), str(tmp_path)])
    rel = [os.path.relpath(p, root) for p in (paths[6], str(other))]
    files = sorted(str(f.relative_to(tmp_path / 'vis')) for f in (tmp_path / 'vis').rglob('*')
                   if f.is_file())
    assert files == sorted([f'{rel[0]}_panel.png', f'{rel[1]}_panel.png',
                            '00000002_panel.png'])
    panels = out['visualization']
    assert panels[3] is None  # the missing file: no panel
    wide = cv2.imread(str(tmp_path / 'vis' / f'{rel[1]}_panel.png'))
    assert wide.shape == (40 + 20, 4 * 48, 3)  # the image's own size
    assert np.array_equal(wide, cv2.cvtColor(panels[1], cv2.COLOR_RGB2BGR))
    image_tile, overlay = panels[0][20:, :32], panels[0][20:, 32:64]
    assert np.array_equal(image_tile, read_image(paths[6]))
    assert not np.array_equal(overlay, image_tile)  # the heat-map is drawn


def test_built_from_the_registry(trained, test_set):
    paths, scores, _ = test_set
    init_default_scope('anomaly_plugin')
    cfg = Config.fromfile(trained['config'])
    for registry, kind in ((INFERENCERS, 'AnomalyInferencer'),
                           (MMENGINE_INFERENCERS, 'anomaly_plugin.AnomalyInferencer')):
        inferencer = registry.build(dict(type=kind, model=cfg, weights=trained['ckpt'],
                                         device='cpu'))
        assert type(inferencer) is AnomalyInferencer
        score = inferencer(paths[0])['predictions'][0]['pred_score']
        assert score == pytest.approx(scores[0], rel=1e-5)
    assert 'visualizer' in cfg and cfg.visualizer.get('name') is None  # not changed


def test_checkpoints_load_safely_and_strictly(trained):
    ckpt = trained['ckpt']
    wrong = Config.fromfile(trained['config'])
    wrong.merge_from_dict({'model.encoder.latent_channels': 4,
                           'model.decoder.latent_channels': 4})
    with pytest.raises(RuntimeError) as info:
        AnomalyInferencer(wrong, ckpt, device='cpu')
    assert 'does not fit the model' in checkpoint_error_message(info.value, ckpt, 'cfg.py')
    marker = trained['tmp'] / 'pwned'
    evil = trained['tmp'] / 'evil.pth'
    torch.save(dict(torch.load(ckpt, weights_only=True), payload=UnsafePayload(marker)), evil)
    with pytest.raises(UnsafeCheckpointError, match='not plain data'):
        AnomalyInferencer(trained['config'], str(evil), device='cpu')
    assert not marker.exists()
    with pytest.raises(ValueError, match='checkpoint'):
        AnomalyInferencer(trained['config'])


def test_inputs_that_are_not_images_get_errors_by_position(trained, test_set):
    paths, scores, _ = test_set
    rgb = read_image(paths[0])
    preds = trained['inferencer']([paths[0], None, [paths[1]], 3.5, rgb.astype(np.float32),
                                   rgb], batch_size=2)['predictions']
    assert len(preds) == 6
    assert preds[0]['pred_score'] == pytest.approx(scores[0], rel=1e-5)
    for index, kind in ((1, 'NoneType'), (2, 'list'), (3, 'float')):
        assert preds[index]['pred_score'] is None and preds[index]['img_path'] is None
        assert preds[index]['error'].startswith(f'input {index} is a {kind}, not an image')
    assert preds[4]['error'].startswith('input 4: an image array must be uint8')
    assert preds[5]['pred_score'] == pytest.approx(scores[0], rel=1e-5)


def test_same_base_names_in_different_folders_keep_their_panels(trained, test_set, tmp_path):
    paths, _, _ = test_set
    files = []
    for i, folder in enumerate(('a', 'b', os.path.join('b', 'c'))):
        os.makedirs(tmp_path / folder)
        files.append(str(tmp_path / folder / 'same.png'))
        cv2.imwrite(files[-1], cv2.imread(paths[i]))
    out = tmp_path / 'vis'
    trained['inferencer'](files, out_dir=str(out))
    panels = sorted(str(p.relative_to(out)) for p in out.rglob('*.png'))
    assert panels == ['a/same.png_panel.png', 'b/c/same.png_panel.png', 'b/same.png_panel.png']
    first = cv2.imread(str(out / 'a' / 'same.png_panel.png'))
    other = cv2.imread(str(out / 'b' / 'same.png_panel.png'))
    assert first.shape == other.shape and not np.array_equal(first, other)


def test_load_warnings_reach_the_results(trained, test_set, tmp_path):
    paths, scores, _ = test_set
    img = cv2.imread(paths[0])
    gif = tmp_path / 'two.tif'
    cv2.imwritemulti(str(gif), [img, 255 - img])
    pred, plain = trained['inferencer']([str(gif), paths[0]])['predictions']
    assert pred['warning'] == '2 frames: only the first is used'
    assert pred['pred_score'] == pytest.approx(scores[0], rel=1e-5)  # the first frame
    assert plain['warning'] is None
