from mmengine.optim import OptimWrapper
from mmengine.runner import TestLoop, ValLoop
from torch.optim import SGD

from anomaly_plugin.engine import FitLoop

# Memory-bank models: one no-grad pass over the training data, then fitting.
train_cfg = dict(type=FitLoop)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
# MMEngine's Runner requires an optimizer; the fit loop never steps it.
optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=SGD, lr=0.0))
param_scheduler = []
# Frozen models: only submodules with trainable parameters would be wrapped.
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')
