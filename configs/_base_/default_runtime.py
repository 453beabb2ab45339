from mmengine.hooks import (
                            CheckpointHook,
                            DistSamplerSeedHook,
                            IterTimerHook,
                            LoggerHook,
                            ParamSchedulerHook,
)
from mmengine.visualization import LocalVisBackend, TensorboardVisBackend

from anomaly_plugin.engine.hooks import (
                            AnomalyVisualizationHook,
                            BadFileHook,
                            CalibrationHook,
                            FrozenPartsHook,
                            NormalFitHook,
                            PlainCheckpointHook,
                            TrainingCheckHook,
)
from anomaly_plugin.visualization import AnomalyVisualizer

default_scope = 'anomaly_plugin'
custom_imports = dict(imports=['anomaly_plugin'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, interval=10),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=1,
                    save_last=True),
    sampler_seed=dict(type=DistSamplerSeedHook),
)

# Thresholds: quantiles of the held-out normal training images' scores
# (``split='holdout'`` of the training dataset config). For F1-optimal
# thresholds on a labelled validation split, give a full dataset config and
# ``inherit=False, mode='f1'``.
calibration = dict(type=CalibrationHook, dataset=dict(split='holdout'),
                   mode='auto', image_quantile=0.99, pixel_quantile=0.999)
# Heat-map panels of every test image; ``--cfg-options visualize=True``.
visualize = False
# Training files that fail only when decoded in full: all reported at the end of
# the first pass (skip_bad_files=True in a dataset turns the error into a warning).
# After training: a warning with the numbers when the loss has not fallen or the maps
# do not find a painted square on held-out normal images, and when a frozen part
# (teacher, feature extractor) changed or differs between ranks (nothing is stopped).
custom_hooks = [
    dict(type=BadFileHook),
    dict(type=PlainCheckpointHook),
    dict(type=FrozenPartsHook),
    # models that fit statistics of normal images after training (fit_stage='after')
    dict(type=NormalFitHook),
    calibration,
    dict(type=TrainingCheckHook),
    dict(type=AnomalyVisualizationHook, enable=visualize),
]

# The runner's visualizer: the training scalars (loss, lr; the LoggerHook) and the
# test panels (AnomalyVisualizationHook) go to every backend, under
# <work_dir>/<timestamp>/vis_data. For TensorBoard (`pip install tensorboard`):
#   --cfg-options visualizer.vis_backends.0.type=TensorboardVisBackend
# or keep both backends:
# visualizer = dict(type=AnomalyVisualizer, vis_backends=[
#     dict(type=LocalVisBackend), dict(type=TensorboardVisBackend)])
visualizer = dict(type=AnomalyVisualizer, vis_backends=[dict(type=LocalVisBackend)])

env_cfg = dict(cudnn_benchmark=False,
               mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
