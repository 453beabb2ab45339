from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import CFlow, FeatureExtractor

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# CFLOW-AD (Gudovskiy et al. 2022): per level of the frozen ImageNet MobileNetV2 (strides
# 4, 8 and 16: 24, 32 and 96 channels), a flow of 8 coupling blocks with fully connected
# sub-networks (hidden width twice the input) over single feature vectors, conditioned on
# a 128-channel 2-D positional encoding; each step trains on 2,048 random positions per
# level; map = minus the per-dimension likelihoods, upsampled and summed over the levels.
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=CFlow,
    backbone=dict(type=FeatureExtractor, pool_size=1,
                  backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(1, 2, 4),
                                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    flow=dict(num_blocks=8, kernel_sizes=(1, ), hidden_ratio=2.0, clamp=1.9),
    condition_channels=128,
    num_fibers=2048)

# Adam, learning rate 1e-4 (the reference implementation's)
optim_wrapper.optimizer.update(lr=1e-4, weight_decay=0.0)
# 20 epochs, at least the 140 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=20, min_iters=140, val_interval=20)
