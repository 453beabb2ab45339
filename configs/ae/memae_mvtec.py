from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    ConvDecoder,
    ConvEncoder,
    L2Loss,
    MemAE,
    MemoryModule,
)

# MemAE (Gong et al., ICCV 2019): every latent vector of the 8x8 code (at
# 128 x 128) is replaced by a sparse mix of memory slots; L2 reconstruction
# loss plus 0.0002 x addressing entropy; anomaly map = squared residual.
# 500 slots with the authors' threshold 0.0025 (1.25 / 500, inside the
# paper's advised [1/N, 3/N]): with the code's 2000 slots the threshold is
# 5 / N and every slot of a freshly initialised model falls below it, so
# nothing would train. The neck's in_channels follows the encoder.
model = dict(
    type=MemAE,
    encoder=dict(type=ConvEncoder, channels=(32, 64, 128, 128), latent_channels=32),
    neck=dict(type=MemoryModule, num_slots=500, shrink_thres=0.0025, loss_weight=0.0002),
    decoder=dict(type=ConvDecoder, latent_channels=32, channels=(128, 128, 64, 32)),
    loss=dict(type=L2Loss))

# 25 epochs, at least the 175 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=25, min_iters=175, val_interval=25)
