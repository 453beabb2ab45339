from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.datasets.transforms import (
                                                LoadAnomalyImage,
                                                PackAnomalyInputs,
                                                Resize,
                                                SynthesizeAnomaly,
)
from anomaly_plugin.models import (
                                   DRAEM,
                                   AutoEncoderNet,
                                   CombinedLoss,
                                   ConvDecoder,
                                   ConvEncoder,
                                   FocalLoss,
                                   L2Loss,
                                   SSIMLoss,
                                   UNet,
)

# DRAEM (Zavrtanik et al., ICCV 2021) at 128x128 (img_size of _base_/datasets/mvtec.py).
# Every training image gets, with probability 0.5, a Perlin-noise region filled with the
# image itself, shifted, flipped and re-coloured (`source='self'`: no texture download;
# a folder path uses a texture collection such as DTD; 'procedural' made-up textures
# taught this short schedule the look of those textures instead of the look of an
# anomaly: see the README). The reconstructive
# autoencoder (no skip connections) restores the clean image (L2 + SSIM); the
# discriminative U-Net sees image and reconstruction and predicts the anomaly mask
# (focal loss). Map: the predicted probability; image score: max of the 21x21-mean-
# filtered map (11x11 here, at half the paper's 256 px). Widths are the project's
# CPU choice (the paper: 128 for the autoencoder, 64 for the U-Net).
train_pipeline = [
    dict(type=LoadAnomalyImage),
    dict(type=Resize, size=img_size),
    dict(type=SynthesizeAnomaly, kinds=[dict(type='PerlinAnomaly', source='self')],
         prob=0.5, keep_clean=True),
    dict(type=PackAnomalyInputs),
]
train_dataloader.dataset.pipeline = train_pipeline
# two networks per step: batches of 8 keep CPU steps short
train_dataloader.update(batch_size=8)

model = dict(
    type=DRAEM,
    reconstructive=dict(
        type=AutoEncoderNet,
        encoder=dict(type=ConvEncoder, channels=(32, 64, 128, 128), latent_channels=128),
        decoder=dict(type=ConvDecoder, latent_channels=128, channels=(128, 128, 64, 32))),
    discriminative=dict(type=UNet, in_channels=6, out_channels=1, channels=(16, 32, 64, 128),
                        out_act='none'),
    reconstruction_loss=dict(type=CombinedLoss, losses=[
        dict(type=L2Loss, loss_weight=1.0),
        dict(type=SSIMLoss, loss_weight=1.0)]),
    segmentation_loss=dict(type=FocalLoss, gamma=2.0),
    score_filter=11,
    postprocess=dict(sigma=0.0))

# 30 epochs, at least the 420 steps they are on a demo category (14 batches of 8)
train_cfg.update(max_epochs=30, min_iters=420, val_interval=30)
