"""Inputs of the inferencer: image files and arrays through a config's test pipeline."""
import os
from typing import Any, List, NamedTuple, Optional, Union

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose

from anomaly_plugin.datasets import image_io
from anomaly_plugin.datasets.transforms import LoadAnomalyImage

from .inference import build_inference_pipeline, load_input

InputType = Union[str, os.PathLike, np.ndarray]


def as_rgb(array: np.ndarray) -> np.ndarray:
    """An image given as an array -> (H, W, 3) uint8 RGB (see :func:`image_io.as_rgb`)."""
    return image_io.as_rgb(array, 'an image array')


def one_line(err: BaseException) -> str:
    """An error as one line: its message, or its type when it has none."""
    return ' '.join(str(err).split()) or type(err).__name__


def check_input(item: Any, index: int) -> None:
    """Refuse an input that is neither a path nor an array, naming its position.

    Args:
        item: one input of a call.
        index: its position in the call's inputs.

    Raises:
        TypeError: ``item`` is None, a list, a tensor, ...
    """
    if not isinstance(item, (str, os.PathLike, np.ndarray)):
        raise TypeError(f'input {index} is a {type(item).__name__}, not an image: give an '
                        'image file path or an (H, W, 3) RGB / (H, W) gray uint8 array')


class InputPipeline:
    """The test pipeline of a config for image files and image arrays.

    Ground-truth transforms are dropped (see
    :func:`~anomaly_plugin.apis.build_inference_pipeline`); an array skips
    the image loading step.

    Args:
        cfg: a config with ``test_dataloader.dataset.pipeline``.
    """

    def __init__(self, cfg: Config):
        self.files = build_inference_pipeline(cfg)
        self.arrays = Compose([t for t in self.files.transforms
                               if not isinstance(t, LoadAnomalyImage)])

    def __call__(self, item: InputType) -> dict:
        """Load and pack one input.

        Args:
            item: an image file, or an (H, W, 3) RGB / (H, W) gray uint8
                array.

        Returns:
            ``dict(inputs=(3, h, w) uint8 tensor, data_samples=AnomalyDataSample)``.

        Raises:
            Exception: what loading the file raises (missing, empty, not an
                image, ...), ``ValueError`` for an array of another type or
                shape or when the pipeline drops the input.
        """
        if not isinstance(item, np.ndarray):
            return load_input(self.files, os.fspath(item))
        img = as_rgb(item)
        data = self.arrays(dict(img=img, img_path=None, ori_shape=img.shape[:2],
                                img_shape=img.shape[:2], mask_path=None, gt_label=0,
                                defect_type='unknown'))
        if data is None:
            raise ValueError('the inference pipeline dropped an image array')
        return data


class InferenceBatch(NamedTuple):
    """What :meth:`AnomalyInferencer.preprocess` yields for one forward pass.

    Attributes:
        inputs: the batch's inputs (files or arrays), loaded or not, in order.
        errors: per input, why it could not be loaded, or None.
        data: the loaded inputs collated for ``model.test_step``; None when
            none of them loaded.
    """

    inputs: List[InputType]
    errors: List[Optional[Exception]]
    data: Any


__all__ = ['InferenceBatch', 'InputPipeline', 'InputType', 'as_rgb', 'check_input', 'one_line']
