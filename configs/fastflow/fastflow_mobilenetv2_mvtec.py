from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import FastFlow, FeatureExtractor

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# FastFlow (Yu et al. 2021): per level of the frozen ImageNet MobileNetV2 (strides 4, 8
# and 16: 24, 32 and 96 channels), a LayerNorm and a flow of 8 affine coupling blocks
# whose sub-networks alternate 3x3 and 1x1 convolutions; loss = the flows' negative
# log-likelihood; map = minus the per-position likelihood, averaged over the levels.
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=FastFlow,
    backbone=dict(type=FeatureExtractor, pool_size=1,
                  backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(1, 2, 4),
                                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    image_size=img_size,  # the LayerNorms' shapes
    flow=dict(num_blocks=8, kernel_sizes=(3, 1), hidden_ratio=1.0, clamp=2.0))

# Adam 1e-3, weight decay 1e-5 (_base_/schedules/adam_epochs.py, the paper's);
# 5 epochs and at least 140 steps (20 epochs of a demo category, 7 batches of 16): the
# flows localise worse the longer they fit the normal features (all of ballscrew, 461
# images: AUPRO 62.56 after 5 epochs = 145 steps, 40.21 after 20 = 580 steps)
train_cfg.update(max_epochs=5, min_iters=140, val_interval=5)
