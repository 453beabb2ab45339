from mmengine.config import read_base

with read_base():
    from .mvtec import *

# The MVTec-layout dataset of mvtec.py at 64x64: the pipelines are written out
# again because a value set here does not reach what the base file already built.
img_size = (64, 64)
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
train_dataloader.dataset.pipeline = train_pipeline
test_dataloader.dataset.pipeline = test_pipeline
val_dataloader = test_dataloader
