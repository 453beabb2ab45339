"""2-process CPU (gloo) training and testing through torchrun."""
import json
import socket

import pytest
from conftest import AE_CONFIG, make_mvtec, options_to_cli, tiny_ae_options
from conftest import run_tool as run


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(args):
    return run(['-m', 'torch.distributed.run', '--nproc_per_node', '2',
                '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
                *args, '--launcher', 'pytorch'])


def test_two_process_train_then_test_equals_one_process(tmp_path):
    # 9 test images: the distributed sampler pads rank 1 with a duplicate,
    # which the evaluation must drop. Faint defects keep metrics below 1.
    data = make_mvtec(tmp_path / 'cat', n_train=16, n_good=4, n_bad=5,
                      defect_value=150)
    opts = tiny_ae_options(data)
    torchrun(['tools/train.py', AE_CONFIG, '--work-dir', str(tmp_path / 'w'),
              '--no-validate', '--cfg-options', *options_to_cli(opts)])
    ckpt = str(tmp_path / 'w' / 'epoch_2.pth')
    cli = options_to_cli(opts)
    torchrun(['tools/test.py', AE_CONFIG, ckpt, '--work-dir', str(tmp_path / 't2'),
              '--cfg-options', *cli])
    run(['tools/test.py', AE_CONFIG, ckpt, '--work-dir', str(tmp_path / 't1'),
         '--cfg-options', *cli])
    two = json.loads((tmp_path / 't2' / 'metrics.json').read_text())
    one = json.loads((tmp_path / 't1' / 'metrics.json').read_text())
    assert set(two) == set(one) and len(one) == 7
    assert any(v < 1.0 for v in one.values())  # not saturated: padding would show
    for k in one:
        assert two[k] == pytest.approx(one[k], abs=1e-9), k


# DFM: an untrained ResNet-18 (an untrained MobileNetV2's deep stage is nearly constant);
# its PCA subspace is compared by projectors (components are defined up to sign)
DFM_OPTIONS = {'model.pool_size': 2, 'model.backbone.backbone.type': 'mmpretrain.ResNet',
               'model.backbone.backbone.depth': 18, 'model.backbone.backbone.out_indices': [2]}


@pytest.mark.parametrize('config,options,keys,subspace', [
    ('configs/patchcore/patchcore_mobilenetv2_mvtec.py', {}, ['memory_bank.bank'], None),
    ('configs/padim/padim_mobilenetv2_mvtec.py', {}, ['gaussian.inv_cov'], None),
    ('configs/dfm/dfm_mobilenetv2_mvtec.py', DFM_OPTIONS, ['pca.mean', 'pca.variances'],
     'pca.components')])
def test_two_process_fit_equals_one_process(tmp_path, config, options, keys, subspace):
    # 9 training images: rank 1 gets a padded repeat that the fit must drop
    data = make_mvtec(tmp_path / 'cat', size=64, n_train=9)
    cli = options_to_cli({'data_root': data, 'img_size': 64,
                          'model.backbone.backbone.init_cfg': None,
                          'train_dataloader.batch_size': 2, **options})
    torchrun(['tools/train.py', config, '--work-dir', str(tmp_path / 'w2'),
              '--cfg-options', *cli])
    run(['tools/train.py', config, '--work-dir', str(tmp_path / 'w1'), '--cfg-options', *cli])
    import torch
    two = torch.load(tmp_path / 'w2' / 'epoch_1.pth', weights_only=True)['state_dict']
    one = torch.load(tmp_path / 'w1' / 'epoch_1.pth', weights_only=True)['state_dict']
    for key in keys:
        assert two[key].shape == one[key].shape and two[key].numel() > 0, key
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    if subspace:
        p1, p2 = one[subspace], two[subspace]
        assert p1.shape == p2.shape and p1.shape[1] > 1
        torch.testing.assert_close(p2 @ p2.T, p1 @ p1.T, rtol=0, atol=1e-4)


def test_two_process_adversarial_training(tmp_path):
    # f-AnoGAN: three parts wrapped on their own, the model's train_step steps them
    # in turn, the gradient penalty differentiates through the critic, and the
    # stage switches from the WGAN-GP to the encoder at the epoch boundary
    config = 'configs/generative/fanogan_mvtec.py'
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=17, n_good=2, n_bad=2)
    cli = options_to_cli({'data_root': data, 'img_size': 32, 'train_dataloader.batch_size': 4,
                          'train_cfg.max_epochs': 2, 'train_cfg.min_iters': 0,
                          'model.gan_epochs': 1})
    out = torchrun(['tools/train.py', config, '--work-dir', str(tmp_path / 'w'),
                    '--no-validate', '--cfg-options', *cli])
    assert 'loss_discriminator' in out and 'loss_encoder' in out
    import torch
    state = torch.load(tmp_path / 'w' / 'epoch_2.pth', weights_only=True)
    # 17 images, 2 held out: 15 -> 8 per rank (one padded) -> 2 steps of 4 per epoch;
    # epoch 1: critic twice, generator once (every 5th step); epoch 2: encoder twice
    steps = {part: max(float(s['step']) for s in opt['state'].values())
             for part, opt in state['optimizer'].items() if opt['state']}
    assert steps == {'discriminator': 2.0, 'generator': 1.0, 'encoder': 2.0}, steps
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values()
               if v.is_floating_point())


@pytest.mark.parametrize('config,prefix', [
    ('configs/stfpm/stfpm_mobilenetv2_mvtec.py', 'model.teacher_student.teacher'),
    ('configs/fastflow/fastflow_mobilenetv2_mvtec.py', 'model.backbone')])
def test_two_process_feature_level_training(tmp_path, config, prefix):
    """A teacher-student and a flow model train and test through the launcher; the
    frozen teacher / feature extractor ends identical on both ranks and unchanged
    (2-process testing equals 1-process testing: see the first test)."""
    data = make_mvtec(tmp_path / 'cat', size=64, n_train=9, n_good=2, n_bad=3)
    cli = options_to_cli({'data_root': data, 'img_size': 64, f'{prefix}.backbone.init_cfg': None,
                          'train_dataloader.batch_size': 4, 'train_cfg.max_epochs': 1,
                          'train_cfg.min_iters': 0, 'default_hooks.logger.interval': 1})
    out = torchrun(['tools/train.py', config, '--work-dir', str(tmp_path / 'w'),
                    '--no-validate', '--cfg-options', *cli])
    assert 'unchanged by training and identical on 2 rank(s)' in out
    ckpt = str(tmp_path / 'w' / 'epoch_1.pth')
    torchrun(['tools/test.py', config, ckpt, '--work-dir', str(tmp_path / 't2'),
              '--cfg-options', *cli])
    metrics = json.loads((tmp_path / 't2' / 'metrics.json').read_text())
    assert len(metrics) == 7 and all(0 <= v <= 1 for v in metrics.values())
