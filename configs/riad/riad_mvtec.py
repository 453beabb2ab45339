from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models.data_preprocessors import AnomalyDataPreprocessor
from anomaly_plugin.models.detectors.riad import RIAD, RIADUNet
from anomaly_plugin.models.losses import CombinedLoss, L2Loss, MSGMSLoss, SSIMLoss

# RIAD (Zavrtanik et al., Pattern Recognition 2021): a U-Net inpaints the
# image from 3 disjoint random cell masks; cell sizes 2, 4, 8, 16 px at
# 256 x 256 (1, 2, 4, 8 px at the 128 x 128 used here). Loss L2 + SSIM +
# MSGMS with unit weights; anomaly map = MSGMS averaged over the cell sizes,
# box-filtered (21 px at 256, so 11 px here) instead of Gaussian-blurred.
model = dict(
    type=RIAD,
    data_preprocessor=dict(type=AnomalyDataPreprocessor),
    # base_channels 16 keeps a CPU step under a second; 64 is the usual GPU width
    generator=dict(type=RIADUNet, base_channels=16, num_downs=4),
    cutout_sizes=(2, 4, 8, 16),
    num_masks=3,
    ref_size=256,
    loss=dict(type=CombinedLoss, losses=[
        dict(type=L2Loss, loss_weight=1.0),
        dict(type=SSIMLoss, loss_weight=1.0),
        dict(type=MSGMSLoss, loss_weight=1.0)]),
    score_map=dict(type=MSGMSLoss, mean_filter_size=11),
    postprocess=dict(sigma=0.0, score='max'))

# each image is inpainted 3 times per step: a smaller batch keeps CPU steps short
train_dataloader.update(batch_size=8)
train_cfg.update(max_epochs=30, val_interval=30)
work_dir = 'work_dirs/riad_mvtec'
