from mmengine.config import read_base

with read_base():
    from .._base_.datasets.mvtec import *
    from .._base_.default_runtime import *
    from .._base_.models.conv_ae import *
    from .._base_.schedules.adam_epochs import *

# Convolutional autoencoder, L2 loss (model in _base_/models/conv_ae.py), trained
# 20 epochs, at least 140 steps (_base_/schedules/adam_epochs.py).
