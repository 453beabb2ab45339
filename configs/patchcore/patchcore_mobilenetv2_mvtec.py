from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.fit import *

from anomaly_plugin.models import (
    FeatureExtractor,
    KNNMemoryBank,
    PatchCore,
)

# ImageNet MobileNetV2, converted offline by `make weights`.
checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py)
model = dict(
    type=PatchCore,
    # out_indices (2, 4): 32 channels at stride 8 and 96 at stride 16
    backbone=dict(type=FeatureExtractor, pool_size=3,
                  backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4),
                                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    memory_bank=dict(type=KNNMemoryBank, coreset_ratio=0.1, projection_dim=128,
                     coreset_mode='exact', chunk_size=1024),
    num_neighbors=9)

train_dataloader.update(batch_size=16, sampler=dict(type='mmengine.dataset.DefaultSampler',
                                                    shuffle=False))
# validation runs only if asked for: training is a single fit
val_cfg = val_dataloader = val_evaluator = None
