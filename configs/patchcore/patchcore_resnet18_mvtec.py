from mmengine.config import read_base

with read_base():
    from .patchcore_mobilenetv2_mvtec import *

# ResNet18 layer2 + layer3, torchvision weights (downloaded on first use).
checkpoint = 'https://download.pytorch.org/models/resnet18-f37072fd.pth'
model.update(backbone=dict(
    type=FeatureExtractor, pool_size=3,
    backbone=dict(type='mmpretrain.ResNet', depth=18, out_indices=(1, 2),
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint))))
