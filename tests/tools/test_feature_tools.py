"""PatchCore and PaDiM configs as shipped, through the tools as a user runs them."""
import json

import pytest
from conftest import assert_test_and_infer_agree, make_mvtec, run_tool

CONFIGS = {'patchcore': 'configs/patchcore/patchcore_mobilenetv2_mvtec.py',
           'padim': 'configs/padim/padim_mobilenetv2_mvtec.py'}
# the only override: no pretrained weights in tests (nothing may download)
NO_WEIGHTS = 'model.backbone.backbone.init_cfg=None'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    # 6 training images, 1 held out: 5 fitted x 32 x 32 patches at 256x256 =
    # 5,120 patches, a 10 % coreset of 512 = 2 x 256 (the progress bar's step)
    return make_mvtec(tmp_path_factory.mktemp('feat') / 'cat', size=64, n_train=6,
                      n_good=3, n_bad=3)


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """Each config trained once by the tool: {name: (output, checkpoint)}."""
    out = {}
    for name, config in CONFIGS.items():
        work = tmp_path_factory.mktemp(name)
        log = run_tool(['tools/train.py', config, '--data-root', data, '--work-dir', str(work),
                        '--cfg-options', NO_WEIGHTS])
        out[name] = (log, str(work / 'epoch_1.pth'))
    return out


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_test_infer_agree(name, data, trained, tmp_path):
    log, ckpt = trained[name]
    if name == 'patchcore':
        assert '512/512' in log  # the coreset's progress bar ran to its end
    assert_test_and_infer_agree(CONFIGS[name], ckpt, data, tmp_path,
                                ['--cfg-options', NO_WEIGHTS], 6)


@pytest.mark.slow
def test_tiled_patchcore_train_test_infer_agree(data, tmp_path):
    """The tiled config as shipped (3 x 3 tiles of 256 on 512x512 images): the bank
    holds 1 % of the tiles' patches: 5 images x 9 tiles x 32 x 32 = 46,080 -> 461."""
    config = 'configs/tiling/patchcore_mobilenetv2_tiled_mvtec.py'
    opts = ['--cfg-options', NO_WEIGHTS.replace('model.', 'model.detector.', 1)]
    work = tmp_path / 'work'
    out = run_tool(['tools/train.py', config, '--data-root', data, '--work-dir', str(work),
                    *opts])
    assert '461/461' in out
    rows = assert_test_and_infer_agree(config, str(work / 'epoch_1.pth'), data, tmp_path,
                                       opts, 6)
    good = [float(r['score']) for r in rows if '/good/' in r['image']]
    spot = [float(r['score']) for r in rows if '/spot/' in r['image']]
    assert len(good) == len(spot) == 3
    assert min(spot) > max(good)  # the white squares score highest


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['test', 'infer'])
def test_profile_breaks_the_run_into_stages(mode, data, trained, tmp_path):
    config = CONFIGS['patchcore']
    out_json = tmp_path / 'profile.json'
    args = ['tools/profile_test.py', config, trained['patchcore'][1], '--data-root', data,
            '--runs', '1', '--threads', '1', '--out', str(out_json),
            '--cfg-options', NO_WEIGHTS]
    out = run_tool(args + (['--infer'] if mode == 'infer' else ['--workers', '1']))
    assert '| backbone |' in out and 'backbone alone on a batch of 6' in out
    result = json.loads(out_json.read_text())
    assert result['images'] == 6 and result['ceiling_images_per_s'] > 0
    stages = {r['stage']: r for r in result['stages']}
    expected = {'decode image', 'resize', 'normalise', 'backbone', 'feature aggregation',
                'kNN search', 'kNN image score', 'map upsample + blur', 'predictions', 'other'}
    if mode == 'test':
        expected |= {'decode mask', 'metric PixelMetric compute', 'metric ImageMetric process'}
        assert result['workers_images_per_s'] > 0
    else:
        expected |= {'outputs (heat-map, mask PNG)', 'results.csv'}
    assert expected <= set(stages), sorted(stages)
    assert stages['backbone']['calls'] == 1 and stages['decode image']['calls'] == 6
    assert sum(r['seconds'] for r in result['stages']) == pytest.approx(result['seconds'])


@pytest.mark.slow
def test_coreset_benchmark_times_both_modes(data, tmp_path):
    """tools/benchmark_coreset.py: the flips give 4x the 5,120 patches; each size
    is selected exact and approx at the config's 10 %."""
    out_json = tmp_path / 'coreset.json'
    out = run_tool(['tools/benchmark_coreset.py', CONFIGS['patchcore'], '--data-root', data,
                    '--sizes', '4000', '12000', '30000', '--flips', '--threads', '1',
                    '--out', str(out_json), '--cfg-options', NO_WEIGHTS])
    assert '20,480 patches of 128 channels' in out and 'N=30,000: only 20,480' in out
    rows = json.loads(out_json.read_text())['rows']
    assert [(r['patches'], r['selections']) for r in rows] == [(4000, 400), (12000, 1200)]
    assert all(r['exact_s'] > 0 and r['approx_s'] > 0 for r in rows)
    assert '| 12,000 | 1,200 |' in out
