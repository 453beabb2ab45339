"""PatchCore and PaDiM configs as shipped, through the tools as a user runs them."""
import csv

import pytest
from conftest import make_mvtec, run_tool

CONFIGS = {'patchcore': 'configs/patchcore/patchcore_mobilenetv2_mvtec.py',
           'padim': 'configs/padim/padim_mobilenetv2_mvtec.py'}
# the only override: no pretrained weights in tests (nothing may download)
NO_WEIGHTS = 'model.backbone.backbone.init_cfg=None'


def _rows(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    # 6 training images, 1 held out: 5 fitted x 32 x 32 patches at 256x256 =
    # 5,120 patches, a 10 % coreset of 512 = 2 x 256 (the progress bar's step)
    return make_mvtec(tmp_path_factory.mktemp('feat') / 'cat', size=64, n_train=6,
                      n_good=3, n_bad=3)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_test_infer_agree(name, data, tmp_path):
    config = CONFIGS[name]
    work = tmp_path / 'work'
    out = run_tool(['tools/train.py', config, '--data-root', data, '--work-dir', str(work),
                    '--cfg-options', NO_WEIGHTS])
    if name == 'patchcore':
        assert '512/512' in out  # the coreset's progress bar ran to its end
    ckpt = str(work / 'epoch_1.pth')
    run_tool(['tools/test.py', config, ckpt, '--data-root', data,
              '--work-dir', str(tmp_path / 'test'), '--cfg-options', NO_WEIGHTS])
    tested = {r['image']: float(r['score']) for r in _rows(tmp_path / 'test' / 'predictions.csv')}
    assert len(tested) == 6
    run_tool(['tools/infer.py', config, ckpt, f'{data}/test', '--recursive',
              '--out', str(tmp_path / 'infer'), '--cfg-options', NO_WEIGHTS])
    inferred = _rows(tmp_path / 'infer' / 'results.csv')
    assert len(inferred) == 6
    for row in inferred:
        assert float(row['score']) == pytest.approx(tested[row['image']], rel=1e-5), row
