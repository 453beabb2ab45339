from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_64 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.gan_epochs import *

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop
from anomaly_plugin.models import (
    AnoGAN,
    DCGANDiscriminator,
    DCGANGenerator,
    GANLoss,
)

# AnoGAN (Schlegl et al., IPMI 2017) at 64x64: a DCGAN of normal images; each test
# image is mapped to z by Adam on (1 - 0.1) * residual + 0.1 * discrimination loss
# (batched: one z per image). Score: the final loss; map |x - G(z*)|. The paper
# searches 500 steps; 100 keep CPU testing practical (model.search_iters).
latent_dim = 100
width = 32
model = dict(
    type=AnoGAN,
    generator=dict(type=DCGANGenerator, image_size=img_size, latent_dim=latent_dim,
                   base_channels=width),
    discriminator=dict(type=DCGANDiscriminator, image_size=img_size, base_channels=width),
    gan_loss=dict(type=GANLoss, mode='vanilla'),
    search_iters=100,
    search_lr=0.05,
    lambda_=0.1,
    seed=0,
    postprocess=dict(sigma=2.0))

# 15 epochs, and at least the 435 steps they are on a 461-image category (29 batches of
# 16): a smaller category trains more epochs instead of fewer steps.
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=15, min_iters=435,
                 val_interval=15)
