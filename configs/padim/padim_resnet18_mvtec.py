from mmengine.config import read_base

with read_base():
    from .padim_mobilenetv2_mvtec import *

# ResNet18 layer1..layer3 (64 + 128 + 256 channels, stride 4), a random 100
# kept, as in the paper. torchvision weights, downloaded on first use.
checkpoint = 'https://download.pytorch.org/models/resnet18-f37072fd.pth'
model.update(backbone=dict(
    type=FeatureExtractor, pool_size=1, upsample='nearest', num_channels=100, channel_seed=0,
    backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(0, 1, 2),
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint))))
