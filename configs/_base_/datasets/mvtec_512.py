from mmengine.config import read_base

with read_base():
    from .mvtec import *

# The MVTec-layout dataset of mvtec.py at 512x512, for tiled models (a tile of
# 256x256 sees the part at twice the scale of a 256x256 input). A value set
# here does not reach what the base file already built, so every Resize is set
# again.
img_size = (512, 512)
for _pipeline in (train_pipeline, test_pipeline):
    for _step in _pipeline:
        if 'size' in _step:
            _step['size'] = img_size
del _pipeline, _step
train_dataloader.dataset.pipeline = train_pipeline
test_dataloader.dataset.pipeline = test_pipeline
val_dataloader = test_dataloader
