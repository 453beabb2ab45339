from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_256 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.adam_epochs import *

from anomaly_plugin.models import (
    KNNMemoryBank,
    PatchPositionClassifier,
    PatchSVDD,
    PatchSVDDEncoder,
)

# Patch SVDD (Yi and Yoon 2020): a hierarchical patch encoder (64-dimensional embeddings
# of 64x64 and 32x32 patches) trained from scratch with SVDD' (neighbouring patches
# close) and the relative-position task (8 classes), 8 pairs per image, size and task.
# After training, the training images' patch embeddings (64 px patches every 16 px,
# 32 px every 8 px) are kept; a test patch's score is its distance to the nearest; each
# pixel averages the patches covering it; the two sizes' maps are multiplied.
# 256x256 input, resized without crop (img_size in _base_/datasets/mvtec_256.py).
model = dict(
    type=PatchSVDD,
    encoder=dict(type=PatchSVDDEncoder, dim=64),
    classifier_big=dict(type=PatchPositionClassifier, dim=64),
    classifier_small=dict(type=PatchPositionClassifier, dim=64),
    svdd_weight=1.0,
    pairs_per_image=8,
    strides=(16, 8),
    # the paper searches every normal patch; a 10 % coreset keeps CPU tests fast
    memory_bank=dict(type=KNNMemoryBank, coreset_ratio=0.1, projection_dim=None))

# Adam, learning rate 1e-4 (the reference implementation's), no weight decay
optim_wrapper.optimizer.update(lr=1e-4, weight_decay=0.0)
# 30 epochs, at least the 210 steps they are on a demo category (7 batches of 16)
train_cfg.update(max_epochs=30, min_iters=210, val_interval=30)
