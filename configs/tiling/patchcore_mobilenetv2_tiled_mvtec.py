from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec_512 import *
    from .._base_.default_runtime import *
    from .._base_.schedules.fit import *
    from ..patchcore.patchcore_mobilenetv2_mvtec import model as patchcore

from anomaly_plugin.models import TiledDetector

# PatchCore on 256x256 tiles of 512x512 images (img_size in
# _base_/datasets/mvtec_512.py), 192 px apart: 3 x 3 overlapping tiles, the
# bank fitted on the tiles of every training image. For strips, e.g.
# ballscrew (565x230): --cfg-options img_size=[256,640] gives 1 x 3 tiles.
# 9 tiles an image give 9x the untiled model's patches: keep 1 % of them (the
# untiled config keeps 10 %), a bank of about the same size. At 10 % all of
# ballscrew (461 images, 4.25 M patches) asks for 425,000 selections: the
# exact selection had not finished after 9 minutes on a 2-core CPU (above
# exact_limit the bank now selects with approx), and each test tile would be
# queried against a 425,000-entry bank.
patchcore.memory_bank.update(coreset_ratio=0.01)
model = dict(type=TiledDetector, detector=patchcore, tile_size=(256, 256), stride=(192, 192))
# one pass over the training images in order; validation only when asked for
train_dataloader.update(sampler=dict(type='mmengine.dataset.DefaultSampler', shuffle=False))
val_cfg = val_dataloader = val_evaluator = None
