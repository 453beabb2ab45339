"""Short-cuts on a model from :func:`init_detector`: predictions of image files."""
import os
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from anomaly_plugin.structures import AnomalyDataSample

from .inference import InferenceResult
from .inferencer import AnomalyInferencer


@torch.no_grad()
def inference_results(model: nn.Module, images: Union[str, Sequence[str]],
                      batch_size: int = 8) -> Iterator[InferenceResult]:
    """Predict image files, reporting the files that cannot be loaded.

    Each file goes through the pipeline on its own; a file that fails there
    (missing, empty, truncated, not an image, ...) yields a result with its
    error and does not affect the other files. Loaded images are predicted
    ``batch_size`` at a time (an :class:`AnomalyInferencer` on ``model``).

    Args:
        model: from :func:`init_detector`.
        images: an image file or a sequence of them.
        batch_size: images per forward pass.

    Returns:
        An iterator of one :class:`InferenceResult` per file, in the order
        of ``images``.
    """
    images = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    inferencer = AnomalyInferencer(model)
    for part in inferencer.stream(images, return_datasamples=True, batch_size=batch_size):
        for sample in part['predictions']:
            if 'exception' in sample:
                yield InferenceResult(sample.img_path, None, sample.exception)
            else:
                yield InferenceResult(sample.img_path, sample, None)


def inference(model: nn.Module, images: Union[str, Sequence[str]],
              batch_size: int = 8) -> Iterator[AnomalyDataSample]:
    """Predict image files in batches.

    Args:
        model: from :func:`init_detector`.
        images: an image file or a sequence of them.
        batch_size: images per forward pass.

    Returns:
        An iterator of one ``AnomalyDataSample`` per image (``img_path``,
        ``ori_shape``, ``pred_score``, ``anomaly_map`` at the input size,
        and when the model is calibrated ``pred_label``, ``pred_mask``,
        ``norm_score``, ``norm_map``). It raises the error of the first
        file that cannot be loaded (after yielding the images before it);
        use :func:`inference_results` to go on past such files.
    """
    for result in inference_results(model, images, batch_size):
        if result.error is not None:
            raise result.error
        yield result.sample


__all__ = ['inference', 'inference_results']
