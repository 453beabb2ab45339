from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    AnomalyDataPreprocessor,
    ConvAutoEncoder,
    ConvDecoder,
    ConvEncoder,
    SSIMLoss,
)

# SSIM autoencoder (Bergmann et al., "Improving unsupervised defect segmentation by
# applying structural similarity to autoencoders", VISAPP 2019): trained with 1 - SSIM
# (11x11 Gaussian window, sigma 1.5); the anomaly map is the per-pixel 1 - SSIM (the
# loss's map, so no separate ``score_map``). Five stride-2 stages take 128x128 inputs to a
# 4x4x16 code (256 values; the paper uses a 100-d vector). Gray categories load as three
# equal channels, on which the channel-mean SSIM equals the gray SSIM.
model = dict(
    type=ConvAutoEncoder,
    data_preprocessor=dict(type=AnomalyDataPreprocessor),
    encoder=dict(type=ConvEncoder, channels=(32, 32, 64, 64, 128), latent_channels=16),
    decoder=dict(type=ConvDecoder, latent_channels=16, channels=(128, 64, 64, 32, 32)),
    loss=dict(type=SSIMLoss, window=11, sigma=1.5),
    postprocess=dict(sigma=4.0, score='max'))

train_cfg.update(max_epochs=30, val_interval=30)
work_dir = 'work_dirs/ssim_ae_mvtec'
