from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.datasets.transforms import (
                                                LoadAnomalyImage,
                                                PackAnomalyInputs,
                                                RandomCrop,
                                                Resize,
                                                SynthesizeAnomaly,
)
from anomaly_plugin.models import CutPaste, PatchGaussian, ProjectionHead

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# CutPaste (Li et al., CVPR 2021), patch-level: 64x64 patches cropped at random from the
# 256x256 image are left normal or get a CutPaste (a rectangle of 2-15 % of the patch,
# colour-jittered, pasted elsewhere) or a CutPaste-Scar (2-16 x 10-25 px, rotated +-45
# degrees), a third each; the ImageNet MobileNetV2 (fine-tuned), a projection head
# (512 -> 128) and a linear classifier learn the three classes. After training a
# Gaussian is fitted to the embeddings of the training images' patches 16 px apart;
# map: each patch's Mahalanobis distance spread over its pixels, smoothed (sigma 4).
train_pipeline = [
    dict(type=LoadAnomalyImage),
    dict(type=Resize, size=img_size),
    dict(type=RandomCrop, size=64),
    dict(type=SynthesizeAnomaly, prob=2 / 3, labels='kind', kinds=[
        dict(type='CutPasteAnomaly', area=(0.02, 0.15), aspect=(0.3, 3.3), jitter=0.1),
        dict(type='ScarAnomaly', width=(2, 16), length=(10, 25), rotation=(-45, 45),
             jitter=0.1, ref_size=64)]),
    dict(type=PackAnomalyInputs),
]
train_dataloader.dataset.pipeline = train_pipeline
train_dataloader.update(batch_size=32)

model = dict(
    type=CutPaste,
    backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(7, ),
                  init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    head=dict(type=ProjectionHead, hidden_channels=(512, ), out_channels=128),
    num_classes=3,
    patch_size=64,
    stride=16,
    density=dict(type=PatchGaussian, eps=0.01))

# Adam 1e-4 for the pretrained backbone (the paper fine-tunes with a small rate);
# 30 epochs, at least the 120 steps they are on a demo category (4 batches of 32)
optim_wrapper.optimizer.update(lr=1e-4)
train_cfg.update(max_epochs=30, min_iters=120, val_interval=30)
