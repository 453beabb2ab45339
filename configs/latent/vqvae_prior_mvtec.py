from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *

from mmengine.optim import OptimWrapper
from mmengine.runner import TestLoop, ValLoop
from torch.optim import Adam

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop, MultiOptimWrapperConstructor
from anomaly_plugin.models import (
    AutoEncoderNet,
    ConvDecoder,
    ConvEncoder,
    GatedPixelCNN,
    L2Loss,
    VectorQuantizer,
    VQVAEPrior,
)

# VQ-VAE + gated PixelCNN prior with latent resampling (after Wang et al., Applied
# Sciences 2020; the paper's prior is PixelSNAIL). 128x128 input -> 16x16 codes of a
# 128-entry codebook (EMA updates, dead-code restarts, commitment 0.25). Epochs
# 1-vq_epochs train the VQ-VAE, the rest the prior; after training the threshold is
# fitted as the 1% quantile of the normal training codes' log-likelihoods. Codes below
# it are resampled from the prior; map = squared residual to the restored image.
# ``model.resample=None`` gives the plain VQ-VAE; ``model.map_type='nll'`` the
# per-code negative log-likelihood map. code_dim is the encoder's latent_channels,
# the decoder's input and the codebook's dimension.
code_dim = 32
model = dict(
    type=VQVAEPrior,
    autoencoder=dict(
        type=AutoEncoderNet,
        encoder=dict(type=ConvEncoder, channels=(32, 64, 128), latent_channels=code_dim),
        neck=dict(type=VectorQuantizer, num_codes=128, code_dim=code_dim, beta=0.25,
                  ema=True, decay=0.99, restart_threshold=1.0),
        decoder=dict(type=ConvDecoder, latent_channels=code_dim, channels=(128, 64, 32))),
    prior=dict(type=GatedPixelCNN, channels=64, num_layers=8, kernel_size=5, hidden=256),
    loss=dict(type=L2Loss),
    vq_epochs=15,
    map_type='residual',
    resample='sample',
    threshold=None,
    threshold_quantile=0.01,
    seed=0)

# one optimizer per part: the model's train_step steps the VQ-VAE, then the prior
optim_wrapper = dict(
    constructor=MultiOptimWrapperConstructor,
    autoencoder=dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-3)),
    prior=dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-3)))
param_scheduler = []
# 15 VQ-VAE epochs, then 10 prior epochs, and at least the 175 steps they are on a demo
# category (7 batches of 16; vq_epochs scales with the epochs); validation (on the test
# split) at the end
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=25, min_iters=175,
                 val_interval=25)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
# Distributed: each part is wrapped on its own (the prior is unused in the VQ-VAE
# epochs, the VQ-VAE in the prior's)
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=True)
