from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.fit import *

from anomaly_plugin.models import DFM, FeatureExtractor, FeaturePCA

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# DFM (Ahuja et al. 2019): the frozen ImageNet MobileNetV2's stride-32 stage (320
# channels, 8x8 at 256x256), average-pooled 4x4 into 2x2, each image's 1,280 values one
# vector; a PCA keeping 97 % of the normal images' variance, fitted in one pass.
# Image score: the feature reconstruction error; map: that error per pooled position.
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=DFM,
    backbone=dict(type=FeatureExtractor, pool_size=1,
                  backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(6, ),
                                init_cfg=dict(type='Pretrained', checkpoint=checkpoint))),
    pool_size=4,
    pca=dict(type=FeaturePCA, n_components=0.97),
    score_type='fre')

train_dataloader.update(batch_size=16, sampler=dict(type='mmengine.dataset.DefaultSampler',
                                                    shuffle=False))
val_cfg = val_dataloader = val_evaluator = None
