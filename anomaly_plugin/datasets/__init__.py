"""Datasets, image I/O and transforms for anomaly detection."""
from .base import BaseAnomalyDataset, list_images
from .box_crop import BoxCropDataset
from .folder import FolderAnomalyDataset
from .image_io import IMAGE_EXTENSIONS, is_image_file, read_image, read_mask
from .mvtec import MVTecADDataset
from .transforms import (
    CenterCrop,
    LoadAnomalyImage,
    LoadAnomalyMask,
    PackAnomalyInputs,
    RandomFlip,
    RandomRotate90,
    Resize,
)
from .visa import VisADataset

__all__ = [
    'BaseAnomalyDataset', 'BoxCropDataset', 'MVTecADDataset', 'FolderAnomalyDataset',
    'VisADataset', 'read_image', 'read_mask', 'is_image_file',
    'IMAGE_EXTENSIONS', 'list_images', 'LoadAnomalyImage', 'LoadAnomalyMask',
    'Resize', 'CenterCrop', 'RandomFlip', 'RandomRotate90', 'PackAnomalyInputs'
]
