from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import RIAD, CombinedLoss, L2Loss, MSGMSLoss, SSIMLoss, UNet

# RIAD (Zavrtanik et al., Pattern Recognition 2021): a U-Net inpaints the
# image from 3 disjoint random cell masks; cell sizes 2, 4, 8, 16 px at
# 256 x 256 (1, 2, 4, 8 px at the 128 x 128 used here). Loss L2 + SSIM +
# MSGMS with unit weights; anomaly map = MSGMS averaged over the cell sizes,
# box-filtered (21 px at 256, so 11 px here) instead of Gaussian-blurred.
model = dict(
    type=RIAD,
    # base_channels 16 keeps a CPU step under a second; 64 is the usual GPU width
    # Ronneberger's U-Net (UNet's defaults) at width 16: 5 levels, 4 poolings
    inpainter=dict(type=UNet, channels=(16, 32, 64, 128, 256)),
    cutout_sizes=(2, 4, 8, 16),
    num_masks=3,
    ref_size=256,
    loss=dict(type=CombinedLoss, losses=[
        dict(type=L2Loss, loss_weight=1.0),
        dict(type=SSIMLoss, loss_weight=1.0),
        dict(type=MSGMSLoss, loss_weight=1.0)]),
    map_loss=dict(type=MSGMSLoss, mean_filter_size=11),
    postprocess=dict(sigma=0.0))

# each image is inpainted 3 times per step: a smaller batch keeps CPU steps short
train_dataloader.update(batch_size=8)
# 30 epochs, at least the 420 steps they are on a demo category (14 batches of 8)
train_cfg.update(max_epochs=30, min_iters=420, val_interval=30)
