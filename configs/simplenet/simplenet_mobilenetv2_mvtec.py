from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from mmengine.optim import OptimWrapper
from torch.optim import Adam

from anomaly_plugin.models import (
                                   FeatureAdaptor,
                                   FeatureExtractor,
                                   PatchDiscriminator,
                                   SimpleNet,
                                   TruncatedL1Loss,
)

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# SimpleNet (Liu et al., CVPR 2023): PatchCore's locally aggregated features of the
# frozen ImageNet MobileNetV2 (strides 8 and 16, 32 + 96 channels, 3x3 neighbourhoods),
# a linear adaptor, Gaussian noise (std 0.015) on the adapted features as anomalies,
# and a 2-layer MLP discriminator trained with the truncated L1 loss (margins 0.5).
# Map: minus the discriminator's score, upsampled and smoothed (sigma 4).
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=SimpleNet,
    backbone=dict(type=FeatureExtractor, pool_size=3,
                  backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4),
                                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    adaptor=dict(type=FeatureAdaptor),
    discriminator=dict(type=PatchDiscriminator, hidden_channels=256, num_layers=2),
    loss=dict(type=TruncatedL1Loss, th_pos=0.5, th_neg=0.5),
    noise_std=0.015)

# the paper's rates: Adam 2e-4 for the discriminator, half of it for the adaptor
# (weight decay 1e-5)
optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=2e-4, weight_decay=1e-5),
                     paramwise_cfg=dict(custom_keys={'adaptor': dict(lr_mult=0.5)}))
# 20 epochs, at least the 140 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=20, min_iters=140, val_interval=20)
