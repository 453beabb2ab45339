from mmengine.optim import OptimWrapper
from mmengine.runner import TestLoop, ValLoop
from torch.optim import Adam

from anomaly_plugin.engine import MinItersEpochBasedTrainLoop

optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-3,
                                                       weight_decay=1e-5))
param_scheduler = []
# 20 epochs, and at least the 140 steps they are on the 120-image demo categories (108
# trained, 7 batches of 16): a smaller category trains more epochs instead of fewer steps.
# Validation (on the test split) once, at the end.
train_cfg = dict(type=MinItersEpochBasedTrainLoop, max_epochs=20, min_iters=140,
                 val_interval=20)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
