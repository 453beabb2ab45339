"""The synthetic-anomaly configs (DRAEM, CutPaste, SimpleNet) as shipped, through the
tools as a user runs them; resume is exact (the draws are seeded per sample and epoch); a
2-process run draws every sample's anomaly as a 1-process run does."""
import json
import socket

import pytest
from conftest import (
    assert_resume_is_exact,
    assert_train_test_infer_agree,
    make_mvtec,
    run_tool,
)

#: config, its own test options (no weights in tests: nothing may download)
CONFIGS = {
    'draem': ('configs/draem/draem_mvtec.py', {'model.score_filter': 5}),
    # 32 px images: patches of 16 px
    'cutpaste': ('configs/cutpaste/cutpaste_mobilenetv2_mvtec.py',
                 {'model.backbone.init_cfg': None, 'model.patch_size': 16, 'model.stride': 8,
                  'train_dataloader.dataset.pipeline.2.size': 16}),
    'simplenet': ('configs/simplenet/simplenet_mobilenetv2_mvtec.py',
                  {'model.backbone.backbone.init_cfg': None}),
}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_mvtec(tmp_path_factory.mktemp('synth') / 'cat', size=64, n_train=9,
                      n_good=2, n_bad=2)


def _options(name, epochs=1):
    return {'train_dataloader.batch_size': 4, 'default_hooks.logger.interval': 1,
            'img_size': 32, 'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
            'train_cfg.min_iters': 0, **CONFIGS[name][1]}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_test_infer_agree(name, data, tmp_path):
    out = assert_train_test_infer_agree(CONFIGS[name][0], data, tmp_path, _options(name), 4)
    assert 'loss_' in out and 'image/AUROC' in out  # trained, validated once


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_resume_is_exact(name, data, tmp_path):
    assert_resume_is_exact(CONFIGS[name][0], lambda epochs: {**_options(name, epochs),
                                                             'data_root': data}, tmp_path)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_draws_equal_one_process(tmp_path):
    """Each sample gets the same anomaly under 2 processes as under 1 (seeded by
    sample and epoch), no sample is drawn on both ranks, and the next epoch draws
    other anomalies."""
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=9, n_good=1, n_bad=1)
    script = 'tests/tools/synthesis_draws.py'
    config = CONFIGS['draem'][0]
    for epoch in (0, 1):
        one = tmp_path / f'one{epoch}'
        one.mkdir()
        run_tool([script, config, data, str(epoch), str(one)])
        two = tmp_path / f'two{epoch}'
        two.mkdir()
        run_tool(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr',
                  '127.0.0.1', '--master_port', str(free_port()), script, config, data,
                  str(epoch), str(two), '--launcher', 'pytorch'])
        single = json.loads((one / 'rank0.json').read_text())
        ranks = [json.loads((two / f'rank{r}.json').read_text()) for r in (0, 1)]
        assert len(single) == 8  # 9 images, 1 held out: 4 per rank, no padding
        assert not set(ranks[0]) & set(ranks[1])
        assert {**ranks[0], **ranks[1]} == single
        drawn = [m for _, m, n in single.values() if n > 0]
        assert len(drawn) >= 2 and len(set(drawn)) == len(drawn)  # each its own anomaly
        if epoch == 1:
            first = json.loads((tmp_path / 'one0' / 'rank0.json').read_text())
            assert sum(first[k][1] != v[1] for k, v in single.items()) >= 2


def test_synthesis_samples_tool_writes_one_row_per_kind(tmp_path):
    import cv2
    import numpy as np
    img = tmp_path / 'part image.png'  # a space in the name
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8))
    tex = tmp_path / 'textures'
    tex.mkdir()
    cv2.imwrite(str(tex / 't.png'), np.full((20, 20, 3), 200, np.uint8))
    out = run_tool(['tools/synthesis_samples.py', str(img), str(tmp_path / 'panel.png'),
                    '--size', '32', '--samples', '3', '--texture-dir', str(tex)])
    assert '5 kinds x 3 samples' in out
    panel = cv2.imread(str(tmp_path / 'panel.png'))
    assert panel.shape == (5 * 32, 4 * 32, 3)
