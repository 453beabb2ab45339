"""--amp: losses that cancel in 16-bit floats are computed in float32."""
import pytest
import torch
from conftest import ROOT, make_mvtec
from mmengine.config import Config
from mmengine.runner import Runner

import anomaly_plugin  # noqa: F401
from anomaly_plugin.engine import disable_validation, enable_amp, merge_options
from anomaly_plugin.models import MSGMSLoss, SSIMLoss

CONFIGS = {
    'ssim_ae': ('configs/ae/ssim_ae_mvtec.py', {}),
    'riad': ('configs/riad/riad_mvtec.py', {'model.inpainter.channels': [8, 16, 32, 64, 128]}),
    # log-determinants and likelihoods in float32 (no weights in tests)
    'fastflow': ('configs/fastflow/fastflow_mobilenetv2_mvtec.py',
                 {'model.backbone.backbone.init_cfg': None}),
    'stfpm': ('configs/stfpm/stfpm_mobilenetv2_mvtec.py',
              {'model.teacher_student.teacher.backbone.init_cfg': None}),
    # SSIM and the focal loss's log-probabilities in float32
    'draem': ('configs/draem/draem_mvtec.py', {'model.score_filter': 5}),
    'simplenet': ('configs/simplenet/simplenet_mobilenetv2_mvtec.py',
                  {'model.backbone.backbone.init_cfg': None}),
    # 32 px images: patches of 16 px; the Gaussian is fitted after training (float64 sums)
    # and the cross-entropy is float32; the backbone is fine-tuned with BatchNorm over
    # batches of 4 one-position maps, where 16-bit rounding moves the updates: only the
    # first step's loss is compared (see FIRST_STEP_ONLY)
    'cutpaste': ('configs/cutpaste/cutpaste_mobilenetv2_mvtec.py', {
        'model.backbone.init_cfg': None, 'model.patch_size': 16, 'model.stride': 8,
        'train_dataloader.dataset.pipeline.2.size': 16}),
}


# STFPM's SGD at learning rate 0.4 carries bfloat16 rounding into the next steps: on a
# CPU without bfloat16 instructions the float32 and bfloat16 losses agreed to 0.07 % at
# the first step and parted by 3-6 % by the second to fourth (NCHW and channels-last)
FIRST_STEP_ONLY = {'cutpaste', 'stfpm'}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_mvtec(tmp_path_factory.mktemp('amp') / 'cat', size=32, n_train=16,
                      n_good=1, n_bad=1)


def _losses(path, extra, data, work, amp):
    opts = {'data_root': data, 'img_size': 32, 'train_dataloader.batch_size': 4,
            'train_dataloader.dataset.holdout_ratio': 0.0,
            'train_cfg.max_epochs': 1, 'train_cfg.min_iters': 0,
            'default_hooks.logger.interval': 1,
            'work_dir': str(work), **extra}
    cfg = merge_options(Config.fromfile(str(ROOT / path)), opts)
    disable_validation(cfg)
    # runners built in the same second share a MessageHub (the name holds
    # the timestamp); a name of its own keeps the loss history per run
    cfg.experiment_name = f'amp_{amp}_{id(cfg)}'
    if amp:
        enable_amp(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.message_hub.get_scalar('train/loss').data[0]  # one value per step


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_amp_losses_match_float32(name, data, tmp_path):
    path, extra = CONFIGS[name]
    full = _losses(path, extra, data, tmp_path / 'fp32', amp=False)
    mixed = _losses(path, extra, data, tmp_path / 'amp', amp=True)
    assert len(full) == len(mixed) == 4
    if name in FIRST_STEP_ONLY:
        full, mixed = full[:1], mixed[:1]
    # bfloat16 convolutions still differ a little; 16-bit SSIM statistics
    # used to shift the SSIM-AE loss by 80 % by the 4th step here
    torch.testing.assert_close(torch.as_tensor(mixed), torch.as_tensor(full),
                               rtol=0.05, atol=0)


@pytest.mark.parametrize('loss', [SSIMLoss(), MSGMSLoss(mean_filter_size=3)])
def test_losses_compute_in_float32_under_autocast(loss):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 32, 32, generator=g)
    b = (a + 0.05 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    ref, ref_map = loss(a, b), loss.map(a, b)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got, got_map = loss(a.bfloat16(), b), loss.map(a, b)
    assert got.dtype == got_map.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-2, atol=1e-3)
    torch.testing.assert_close(got_map, ref_map, rtol=1e-3, atol=1e-4)
