from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    FeatureClustering,
    FeatureClusteringAE,
    L2Loss,
    MultiScaleConvEncoder,
    MultiScaleFusionDecoder,
)

# Multi-scale feature-clustering autoencoder (after Yang et al., IEEE T-ASE
# 2019): the encoder outputs at strides 4, 8 and 16 are narrowed to 4, 8 and
# 16 channels, each pulled towards its nearest of 8 learned centres (weight
# 0.1), and fused on the way back up. Anomaly map = squared residual. The
# neck's in_channels and the decoder's in_channels / in_strides follow the
# encoder and the neck.
model = dict(
    type=FeatureClusteringAE,
    encoder=dict(type=MultiScaleConvEncoder, channels=(32, 64, 128, 128)),
    neck=dict(type=FeatureClustering, in_indices=(1, 2, 3), latent_channels=(4, 8, 16),
              num_clusters=8, mode='min', loss_weight=0.1),
    decoder=dict(type=MultiScaleFusionDecoder, channels=(128, 64, 32, 16)),
    loss=dict(type=L2Loss))

# 25 epochs, at least the 175 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=25, min_iters=175, val_interval=25)
