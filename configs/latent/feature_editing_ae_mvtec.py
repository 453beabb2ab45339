from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    AutoEncoderNet,
    ConvDecoder,
    ConvEncoder,
    FeatureEditingAE,
    L2Loss,
    LatentKMeansEditor,
)

# Autoencoder with latent feature editing (the project's formulation after Tsai et al.,
# see FeatureEditingAE): trained to reconstruct; after training k-means (k=64) is fitted
# on the 8x8x32 latent vectors of the normal training images; at test time each latent
# vector is replaced by its nearest centre (alpha=1) before decoding. Map = squared
# residual to the edited reconstruction. latent_channels is the encoder's output, the
# editor's in_channels and the decoder's input.
latent_channels = 32
model = dict(
    type=FeatureEditingAE,
    autoencoder=dict(
        type=AutoEncoderNet,
        encoder=dict(type=ConvEncoder, channels=(32, 64, 128, 128),
                     latent_channels=latent_channels),
        neck=dict(type=LatentKMeansEditor, in_channels=latent_channels, num_clusters=64,
                  alpha=1.0),
        decoder=dict(type=ConvDecoder, latent_channels=latent_channels,
                     channels=(128, 128, 64, 32))),
    loss=dict(type=L2Loss))

# 20 epochs, at least 140 steps (_base_/schedules/adam_epochs.py)
