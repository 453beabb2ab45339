from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.models.conv_ae import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import SSIMLoss

# SSIM autoencoder (Bergmann et al., "Improving unsupervised defect segmentation by
# applying structural similarity to autoencoders", VISAPP 2019): trained with 1 - SSIM
# (11x11 Gaussian window, sigma 1.5); the anomaly map is the per-pixel 1 - SSIM (the
# loss's map, so no separate ``map_loss``). The paper compares one architecture under
# both losses, so this is the L2 conv AE (_base_/models/conv_ae.py) with the loss swapped.
# Image score: the mean of the map, i.e. 1 - the SSIM index of the image pair. The
# SSIM map is contrast-normalised and saturates near 1 wherever a structure is not
# reconstructed, so its maximum is about as high on normal textures as on defects.
# Gray categories load as three equal channels, on which the channel-mean SSIM equals
# the gray SSIM.
model.update(loss=dict(type=SSIMLoss, window=11, sigma=1.5),
             postprocess=dict(reduction='mean'))

# 30 epochs, at least the 210 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=30, min_iters=210, val_interval=30)
