from mmengine.config import read_base

with read_base():
    from .patchcore_mobilenetv2_mvtec import *

# Wide-ResNet-50-2, layer2 + layer3 (the paper's setting). The weights are
# torchvision's (their keys match mmpretrain's ResNet); they download on first
# use, so this config needs internet once, or a local `checkpoint` path.
checkpoint = 'https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth'
model.update(backbone=dict(
    type=FeatureExtractor, pool_size=3,
    backbone=dict(type='mmpretrain.ResNet', depth=50, base_channels=128, expansion=2,
                  out_indices=(1, 2), init_cfg=dict(type='Pretrained', checkpoint=checkpoint))))
