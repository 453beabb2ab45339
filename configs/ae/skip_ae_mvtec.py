from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    L2Loss,
    SkipAutoEncoder,
    StainNoise,
    UNet,
)

# Skip-connected autoencoder trained on stained images (Collin and De Vleeschouwer,
# ICPR 2020). The paper's loss is the mean squared error (L2) between the reconstruction
# of the stained image and the clean image; the anomaly map is the squared residual.
# Stains: semi-axes 1-12% of the image side, grey level 10..220 of 255 as in the authors'
# noise model; 1-3 stains per image here (the reference draws one).
model = dict(
    type=SkipAutoEncoder,
    # five stride-2 levels (3x3 convs, LeakyReLU); up: bilinear, skips concatenated
    # (merge='add' for the authors' additive ones) and a conv block; at the input
    # resolution a conv block and a 3x3 conv to the image, a sigmoid
    autoencoder=dict(type=UNet, channels=(16, 32, 64, 128, 128), down='stride',
                     level_convs=1, act='leaky_relu', up='bilinear', merge='concat',
                     merge_convs=1, skip_first=False, head_convs=1, out_kernel=3),
    corruption=dict(type=StainNoise, num_stains=(1, 3), size_range=(0.01, 0.12),
                    color_mode='gray', color_range=(10 / 255, 220 / 255)),
    loss=dict(type=L2Loss))

# 30 epochs, at least the 210 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=30, min_iters=210, val_interval=30)
