"""The feature-level configs (STFPM, Reverse Distillation, FastFlow, CFLOW-AD, Patch SVDD,
DFM) as shipped, through the tools as a user runs them; resume of the trained ones is
exact, random draws included."""
import pytest
from conftest import (
    assert_resume_is_exact,
    assert_train_test_infer_agree,
    make_mvtec,
)

#: config, the prefix of its pretrained backbone (no weights in tests: nothing may download)
CONFIGS = {
    'stfpm': ('configs/stfpm/stfpm_mobilenetv2_mvtec.py', 'model.teacher_student.teacher'),
    'rd': ('configs/reverse_distillation/rd_mobilenetv2_mvtec.py', 'model.teacher'),
    'fastflow': ('configs/fastflow/fastflow_mobilenetv2_mvtec.py', 'model.backbone'),
    'cflow': ('configs/cflow/cflow_mobilenetv2_mvtec.py', 'model.backbone'),
    'patch_svdd': ('configs/patch_svdd/patch_svdd_mvtec.py', None),  # trained from scratch
    'dfm': ('configs/dfm/dfm_mobilenetv2_mvtec.py', 'model.backbone'),
}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_mvtec(tmp_path_factory.mktemp('featlevel') / 'cat', size=64, n_train=9,
                      n_good=2, n_bad=2)


def _options(name, epochs=1):
    config, prefix = CONFIGS[name]
    opts = {'train_dataloader.batch_size': 4, 'default_hooks.logger.interval': 1}
    if prefix:
        opts[f'{prefix}.backbone.init_cfg'] = None
    if name == 'patch_svdd':  # fewer patch pairs per step: the test is about the tools
        opts['model.pairs_per_image'] = 2
    if name != 'dfm':  # DFM: fitted in one pass, at its own 256x256 (a stride-32 map pooled 4x4)
        opts['img_size'] = 64
        opts.update({'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
                     'train_cfg.min_iters': 0})
    return opts


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_test_infer_agree(name, data, tmp_path):
    out = assert_train_test_infer_agree(CONFIGS[name][0], data, tmp_path, _options(name), 4)
    if name == 'dfm':
        assert 'pca_components' in out
    else:
        assert 'loss' in out and 'image/AUROC' in out  # trained, validated once


#: fewer fibers than positions: CFLOW draws which ones it trains on
RESUME = {'stfpm': {}, 'fastflow': {}, 'cflow': {'model.num_fibers': 64}, 'patch_svdd': {}}


@pytest.mark.parametrize('name', sorted(RESUME))
def test_resume_is_exact(name, data, tmp_path):
    assert_resume_is_exact(CONFIGS[name][0], lambda epochs: {
        **_options(name, epochs), **RESUME[name], 'data_root': data}, tmp_path)
