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
    L2Loss,
)

# Convolutional autoencoder, L2 loss; anomaly map = squared residual, image
# score = max of the Gaussian-smoothed map.
model = dict(
    type=ConvAutoEncoder,
    data_preprocessor=dict(type=AnomalyDataPreprocessor),
    encoder=dict(type=ConvEncoder, channels=(32, 64, 128, 128), latent_channels=32),
    decoder=dict(type=ConvDecoder, latent_channels=32, channels=(128, 128, 64, 32)),
    loss=dict(type=L2Loss),
    postprocess=dict(sigma=4.0, score='max'))

train_cfg.update(max_epochs=20, val_interval=20)
work_dir = 'work_dirs/conv_ae_mvtec'
