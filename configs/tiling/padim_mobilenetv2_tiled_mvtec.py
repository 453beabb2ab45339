from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_512 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.fit import *
    from ..padim.padim_mobilenetv2_mvtec import model as padim

from anomaly_plugin.models import TiledDetector

# PaDiM on 256x256 tiles of 512x512 images (img_size in
# _base_/datasets/mvtec_512.py), 192 px apart: 3 x 3 overlapping tiles. The
# Gaussian of a patch position is fitted on that position of every tile. For
# strips, e.g. ballscrew (565x230): --cfg-options img_size=[256,640].
model = dict(type=TiledDetector, detector=padim, tile_size=(256, 256), stride=(192, 192))
# one pass over the training images in order; validation only when asked for
train_dataloader.update(sampler=dict(type='mmengine.dataset.DefaultSampler', shuffle=False))
val_cfg = val_dataloader = val_evaluator = None
