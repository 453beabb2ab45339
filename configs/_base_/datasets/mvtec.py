from mmengine.dataset import DefaultSampler, pseudo_collate

from anomaly_plugin.datasets import MVTecADDataset
from anomaly_plugin.datasets.transforms import (
                                                LoadAnomalyImage,
                                                LoadAnomalyMask,
                                                PackAnomalyInputs,
                                                RandomFlip,
                                                Resize,
)
from anomaly_plugin.evaluation import ImageMetric, PixelMetric

# One category folder in MVTec AD layout; ``--data-root DIR`` or
# ``--cfg-options data_root=DIR`` points every split at another one.
data_root = 'data/demo/brick'
# (H, W) model input; ``--cfg-options img_size=[256,256]`` changes every Resize.
img_size = (128, 128)
holdout_ratio = 0.1  # normal training images kept back for calibration

train_pipeline = [
    dict(type=LoadAnomalyImage),
    dict(type=Resize, size=img_size),
    dict(type=RandomFlip, prob=0.0),
    dict(type=PackAnomalyInputs),
]
test_pipeline = [
    dict(type=LoadAnomalyImage),
    dict(type=LoadAnomalyMask),
    dict(type=Resize, size=img_size),
    dict(type=PackAnomalyInputs),
]

train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type=DefaultSampler, shuffle=True),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(type=MVTecADDataset, data_root=data_root, split='train',
                 holdout_ratio=holdout_ratio, pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    collate_fn=dict(type=pseudo_collate),
    dataset=dict(type=MVTecADDataset, data_root=data_root, split='test',
                 pipeline=test_pipeline))
val_dataloader = test_dataloader
# Metrics at the model input size; set ``eval_size`` on PixelMetric to change.
test_evaluator = [dict(type=ImageMetric), dict(type=PixelMetric)]
val_evaluator = test_evaluator
