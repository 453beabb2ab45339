from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_64 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.gan_epochs import *

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop
from anomaly_plugin.models import (
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANGenerator,
    EncoderDecoderEncoder,
    FeatureMatchingLoss,
    GANLoss,
    GANomaly,
)

# GANomaly (Akcay et al., ACCV 2018) at 64x64 (a DCGAN stack: 64 -> 4 in four
# stride-2 stages). Generator loss 1 * feature matching + 50 * L1 + 1 * latent L2;
# image score ||z - z_hat||_1 (latent mean); map |x - x_hat| (not in the paper).
# Width 32 (channels 32-64-128-256) keeps CPU epochs short; the paper's is 64.
latent_dim = 100
width = 32
model = dict(
    type=GANomaly,
    generator=dict(
        type=EncoderDecoderEncoder,
        encoder=dict(type=DCGANEncoder, image_size=img_size, out_dim=latent_dim,
                     base_channels=width),
        decoder=dict(type=DCGANGenerator, image_size=img_size, latent_dim=latent_dim,
                     base_channels=width),
        encoder2=dict(type=DCGANEncoder, image_size=img_size, out_dim=latent_dim,
                      base_channels=width)),
    discriminator=dict(type=DCGANDiscriminator, image_size=img_size, base_channels=width),
    gan_loss=dict(type=GANLoss, mode='vanilla'),
    feature_loss=dict(type=FeatureMatchingLoss, norm='l2'),
    weights=dict(adv=1.0, con=50.0, enc=1.0),
    postprocess=dict(sigma=2.0))

# 15 epochs, and at least the 435 steps they are on a 461-image category (29 batches of
# 16): a smaller category trains more epochs instead of fewer steps.
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=15, min_iters=435,
                 val_interval=15)
