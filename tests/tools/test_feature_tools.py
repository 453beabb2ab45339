"""PatchCore and PaDiM configs as shipped, through the tools as a user runs them."""
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


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_test_infer_agree(name, data, tmp_path):
    config = CONFIGS[name]
    work = tmp_path / 'work'
    out = run_tool(['tools/train.py', config, '--data-root', data, '--work-dir', str(work),
                    '--cfg-options', NO_WEIGHTS])
    if name == 'patchcore':
        assert '512/512' in out  # the coreset's progress bar ran to its end
    ckpt = str(work / 'epoch_1.pth')
    assert_test_and_infer_agree(config, ckpt, data, tmp_path, ['--cfg-options', NO_WEIGHTS], 6)
