from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from mmengine.optim import OptimWrapper
from torch.optim import Adam

from anomaly_plugin.models import (
    CosineDistanceLoss,
    FeatureExtractor,
    OneClassBottleneck,
    ReverseDecoder,
    ReverseDistillation,
)

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# Reverse Distillation (Deng and Li, CVPR 2022): the frozen ImageNet MobileNetV2 teacher
# at strides 4, 8 and 16 (24, 32 and 96 channels); the one-class bottleneck fuses the
# three levels into a 256-channel code at stride 32; the decoder student reconstructs the
# levels from it; loss and map = 1 - cosine per level (map: the levels summed).
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=ReverseDistillation,
    teacher=dict(type=FeatureExtractor, pool_size=1,
                 backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(1, 2, 4),
                               init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    # in_channels: the teacher's level channels
    bottleneck=dict(type=OneClassBottleneck, out_channels=256, num_blocks=1),
    # in_channels / out_channels: the code's and the teacher's
    decoder=dict(type=ReverseDecoder, num_blocks=1),
    loss=dict(type=CosineDistanceLoss, reduction='location'))

# the paper's optimiser: Adam, learning rate 0.005, betas (0.5, 0.999)
optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=0.005, betas=(0.5, 0.999)))
# 20 epochs, at least the 140 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=20, min_iters=140, val_interval=20)
