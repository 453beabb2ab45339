from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    AnomalyDataPreprocessor,
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
    data_preprocessor=dict(type=AnomalyDataPreprocessor),
    num_levels=3,
    gray=False,
    channels=(32, 64),
    latent_channels=16,
    patch_size=32,
    patches_per_image=8,
    corruption=dict(type=PixelNoise, mode='salt_pepper', amount=0.05),
    loss=dict(type=L2Loss),
    fusion='mean',
    standardize_levels=True,
    postprocess=dict(sigma=4.0, score='max'))

train_cfg.update(max_epochs=30, val_interval=30)
work_dir = 'work_dirs/mscdae_mvtec'
