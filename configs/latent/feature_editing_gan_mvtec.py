from mmengine.config import read_base

with read_base():
    from .feature_editing_ae_mvtec import *

from mmengine.optim import OptimWrapper
from torch.optim import Adam

from anomaly_plugin.engine import MultiOptimWrapperConstructor
from anomaly_plugin.models import DCGANDiscriminator, GANLoss

# The feature-editing autoencoder of feature_editing_ae_mvtec.py, trained adversarially:
# a DCGAN discriminator tells inputs from reconstructions and the autoencoder adds 0.01 x
# its adversarial loss (one optimizer per part). Editing and map are unchanged.
model.update(
    discriminator=dict(type=DCGANDiscriminator, image_size=img_size, base_channels=32),
    gan_loss=dict(type=GANLoss, mode='vanilla'),
    adv_weight=0.01)
optim_wrapper = dict(
    constructor=MultiOptimWrapperConstructor,
    autoencoder=dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-3, weight_decay=1e-5)),
    discriminator=dict(type=OptimWrapper,
                       optimizer=dict(type=Adam, lr=2e-4, betas=(0.5, 0.999))))
# Distributed: each part is wrapped on its own (train_step is the model's).
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=True)
