from mmengine.optim import OptimWrapper
from mmengine.runner import EpochBasedTrainLoop, TestLoop, ValLoop
from torch.optim import Adam

optim_wrapper = dict(type=OptimWrapper, optimizer=dict(type=Adam, lr=1e-3,
                                                       weight_decay=1e-5))
param_scheduler = []
# validation (on the test split) once, at the end
train_cfg = dict(type=EpochBasedTrainLoop, max_epochs=20, val_interval=20)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
