from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    AutoEncoderNet,
    ConvDecoder,
    ConvEncoder,
    L2Loss,
    MultiScalePyramidAE,
    PixelNoise,
)

# MSCDAE (Mei, Wang and Wen, Sensors 2018): 3-level Gaussian pyramid, one denoising
# autoencoder per level trained on 32x32 crops corrupted with salt-and-pepper noise;
# anomaly map = mean of the per-level squared residuals, each standardised by its mean
# and std over the normal training images (fitted after training), upsampled to the
# input size (the paper thresholds each level at mean + gamma x std and merges the
# binary maps; see the class docstring).
model = dict(
    type=MultiScalePyramidAE,
    num_levels=3,
    gray=False,
    # one autoencoder per level (separate weights): 2 stride-2 stages, 16 code channels
    autoencoder=dict(
        type=AutoEncoderNet,
        encoder=dict(type=ConvEncoder, in_channels=3, channels=(32, 64), latent_channels=16),
        decoder=dict(type=ConvDecoder, latent_channels=16, channels=(64, 32), out_channels=3)),
    patch_size=32,
    patches_per_image=8,
    corruption=dict(type=PixelNoise, mode='salt_pepper', amount=0.05),
    loss=dict(type=L2Loss),
    fusion='mean',
    standardize_levels=True)

# 30 epochs, at least the 210 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=30, min_iters=210, val_interval=30)
