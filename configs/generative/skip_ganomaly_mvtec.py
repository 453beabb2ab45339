from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_64 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.gan_epochs import *

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop
from anomaly_plugin.models import (
    DCGANDiscriminator,
    FeatureMatchingLoss,
    GANLoss,
    SkipGANomaly,
    UNet,
)

# Skip-GANomaly (Akcay et al., IJCNN 2019) at 64x64: U-Net generator with skip
# connections (64 -> 1 px in six stride-2 stages), DCGAN discriminator. Generator
# loss 1 * adversarial + 40 * L1 + 1 * feature L2; image score
# 0.9 * |x - x_hat|_1 + 0.1 * ||f(x) - f(x_hat)||^2 (means); map |x - x_hat|.
width = 32
model = dict(
    type=SkipGANomaly,
    # pix2pix's U-Net: six 4x4 stride-2 levels (LeakyReLU, BatchNorm but on the first
    # and the innermost), 4x4 transposed convs back up (BatchNorm, ReLU), each
    # concatenated with the encoder level, a transposed conv and a sigmoid; DCGAN init
    generator=dict(type=UNet, channels=(width, 2 * width, 4 * width, 256, 256, 256),
                   down='stride', down_kernel=4, level_convs=1, act='leaky_relu',
                   outer_norm=False, up_kernel=4, up_norm=True, merge_convs=0,
                   skip_first=False, init='dcgan'),
    discriminator=dict(type=DCGANDiscriminator, image_size=img_size, base_channels=width),
    gan_loss=dict(type=GANLoss, mode='vanilla'),
    feature_loss=dict(type=FeatureMatchingLoss, norm='l2'),
    weights=dict(adv=1.0, con=40.0, lat=1.0),
    score_lambda=0.9,
    postprocess=dict(sigma=2.0))

# 15 epochs, and at least the 435 steps they are on a 461-image category (29 batches of
# 16): a smaller category trains more epochs instead of fewer steps.
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=15, min_iters=435,
                 val_interval=15)
