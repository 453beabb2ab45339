from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from mmengine.optim import OptimWrapper
from torch.optim import SGD

from anomaly_plugin.models import STFPM, FeatureExtractor, PyramidMatchingLoss, TeacherStudent

checkpoint = 'checkpoints/mobilenet_v2_imagenet_mmpretrain.pth'
# STFPM (Wang et al. 2021): a MobileNetV2 student, trained from scratch, learns to
# match the frozen ImageNet MobileNetV2 teacher at strides 4, 8 and 16 (24, 32 and 96
# channels); map = product of the three levels' normalised squared distances.
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=STFPM,
    teacher_student=dict(
        type=TeacherStudent,
        # student=None: the teacher's backbone config without its weights
        # channels_last: the student's weights and input in channels-last memory
        # format (the same float32 arithmetic, faster CPU convolutions)
        channels_last=True,
        teacher=dict(type=FeatureExtractor, pool_size=1,
                     backbone=dict(type='mmpretrain.MobileNetV2', out_indices=(1, 2, 4),
                                   init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))),
    loss=dict(type=PyramidMatchingLoss))

# the paper's optimiser: SGD, learning rate 0.4, momentum 0.9, weight decay 1e-4
optim_wrapper = dict(type=OptimWrapper,
                     optimizer=dict(type=SGD, lr=0.4, momentum=0.9, weight_decay=1e-4))
# 20 epochs, at least the 140 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=20, min_iters=140, val_interval=20)
