from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.fit import *

from anomaly_plugin.models import FeatureExtractor, PaDiM, PatchGaussian

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py)
model = dict(
    type=PaDiM,
    # 32 + 96 channels (stride 8 and 16), a random 100 of them kept
    backbone=dict(type=FeatureExtractor, pool_size=1, upsample='nearest',
                  num_channels=100, channel_seed=0,
                  backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(2, 4),
                                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    gaussian=dict(type=PatchGaussian, eps=0.01))

train_dataloader.update(batch_size=16, sampler=dict(type='mmengine.dataset.DefaultSampler',
                                                    shuffle=False))
val_cfg = val_dataloader = val_evaluator = None
