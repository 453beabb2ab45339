from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_64 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.gan_epochs import *

from mmengine.optim import OptimWrapper
from torch.optim import Adam

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop
from anomaly_plugin.models import (
    DCGANDiscriminator,
    DCGANEncoder,
    DCGANGenerator,
    FAnoGAN,
)

# f-AnoGAN (Schlegl et al., MedIA 2019), izi_f training, at 64x64. One training run:
# the first gan_epochs epochs train a WGAN-GP (critic with layer norm, 5 critic steps
# per generator step, penalty 10), the remaining epochs of max_epochs the encoder
# with generator and critic fixed. Score: mean (x - G(E(x)))^2 + kappa * mean
# (f(x) - f(G(E(x))))^2; map |x - G(E(x))|.
latent_dim = 100
width = 32
model = dict(
    type=FAnoGAN,
    generator=dict(type=DCGANGenerator, image_size=img_size, latent_dim=latent_dim,
                   base_channels=width),
    discriminator=dict(type=DCGANDiscriminator, image_size=img_size, base_channels=width,
                       norm='layer'),
    encoder=dict(type=DCGANEncoder, image_size=img_size, out_dim=latent_dim,
                 base_channels=width),
    gan_epochs=20,
    n_critic=5,
    gp_weight=10.0,
    kappa=1.0,
    postprocess=dict(sigma=2.0))

# WGAN-GP's Adam settings (lr 1e-4, betas (0, 0.9)); the encoder's own optimizer
optim_wrapper.update(
    generator=dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-4, betas=(0.0, 0.9))),
    discriminator=dict(type=OptimWrapper,
                       optimizer=dict(type=Adam, lr=1e-4, betas=(0.0, 0.9))),
    encoder=dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-4, betas=(0.5, 0.999))))
# 20 epochs of WGAN-GP, then 10 of the encoder
# 30 epochs, and at least the 870 steps they are on a 461-image category (29 batches of
# 16): a smaller category trains more epochs instead of fewer steps.
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=30, min_iters=870,
                 val_interval=30)
