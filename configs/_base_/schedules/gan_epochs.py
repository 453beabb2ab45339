from mmengine.optim import OptimWrapper
from mmengine.runner import EpochBasedTrainLoop, TestLoop, ValLoop
from torch.optim import Adam

from anomaly_plugin.engine import MultiOptimWrapperConstructor

# One optimizer per part (as MMEngine documents for GANs): the model's train_step steps the
# discriminator, then the generator. Adam 2e-4, betas (0.5, 0.999) as in DCGAN.
optim_wrapper = dict(
    constructor=MultiOptimWrapperConstructor,
    generator=dict(type=OptimWrapper,
                   optimizer=dict(type=Adam, lr=2e-4, betas=(0.5, 0.999))),
    discriminator=dict(type=OptimWrapper,
                       optimizer=dict(type=Adam, lr=2e-4, betas=(0.5, 0.999))))
param_scheduler = []
# validation (on the test split) once, at the end
train_cfg = dict(type=EpochBasedTrainLoop, max_epochs=15, val_interval=15)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
# Distributed: each part is wrapped on its own (train_step is the model's).
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=True)
