from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_64 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop
from anomaly_plugin.models import VAE, VAEDecoder, VAEEncoder

# Variational autoencoder at 64x64: four stride-2 stages to a 4x4 map, a 128-d
# vector latent, a Gaussian decoder with a per-pixel variance. Loss: the negative
# ELBO per image element (NLL + beta * KL / (C*H*W)). model.map_type chooses the
# anomaly map: 'nll' (per-pixel NLL, mean of 4 seeded posterior samples),
# 'gradient_attention' (Liu et al. 2020), 'gradient' (|d ELBO / dx|, Zimmerer et al.
# 2018) or 'combined' (squared error times the gradient); model.image_score 'elbo'
# scores an image by its negative ELBO, 'map' by the map's maximum.
latent_dim = 128
model = dict(
    type=VAE,
    encoder=dict(type=VAEEncoder, image_size=img_size, channels=(32, 64, 128, 256),
                 latent_dim=latent_dim, latent='vector'),
    decoder=dict(type=VAEDecoder, image_size=img_size, channels=(256, 128, 64, 32),
                 latent_dim=latent_dim, latent='vector', variance='pixel'),
    beta=1.0,
    map_type='nll',
    image_score='elbo',
    num_samples=4,
    seed=0,
    attention_loss_weight=0.0,
    postprocess=dict(sigma=2.0))

# 30 epochs, and at least the 870 steps they are on a 461-image category (29 batches of
# 16): a smaller category trains more epochs instead of fewer steps.
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=30, min_iters=870,
                 val_interval=30)
