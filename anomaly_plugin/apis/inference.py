"""Building blocks of inference: the model, the input pipeline, the images.

:class:`~anomaly_plugin.apis.AnomalyInferencer` puts them together.
"""
import copy
import os
import os.path as osp
from typing import Any, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from anomaly_plugin.datasets.base import list_images as _list_folder
from anomaly_plugin.datasets.image_io import IMAGE_EXTENSIONS, is_image_file
from anomaly_plugin.engine.checkpoint import UnsafeCheckpointError
from anomaly_plugin.registry import MODELS, TRANSFORMS

#: transforms that need ground truth and are dropped for inference
_GT_TRANSFORMS = ('LoadAnomalyMask',)

#: texts of the errors raised when a state dict does not match the model
#: (MMEngine's ``load_state_dict`` and torch's ``_load_from_state_dict``)
_MISMATCH_MARKERS = ('do not match', 'size mismatch', 'missing keys', 'unexpected key')


def _type_name(t) -> str:
    return (t if isinstance(t, str) else t.__name__).split('.')[-1]


def init_detector(config: Union[str, os.PathLike, Config], checkpoint: str,
                  device: str = 'cpu') -> torch.nn.Module:
    """Build the model of ``config`` and load ``checkpoint`` (weights-only).

    Args:
        config: a config file path, or a :class:`Config` (e.g. one already
            merged with ``--cfg-options``); a Config is copied, not changed.
        checkpoint: checkpoint file; it must fit the model exactly.
        device: where the model runs, e.g. ``'cpu'`` or ``'cuda:0'``.

    Returns:
        The model in eval mode, with ``model.cfg`` set to the config and
        ``model.checkpoint_meta`` to the checkpoint's ``meta`` (e.g.
        ``meta['calibration']``: whether and why not it is calibrated).

    Raises:
        FileNotFoundError: no such checkpoint.
        UnsafeCheckpointError: the checkpoint holds objects that are not
            plain data.
        RuntimeError: the checkpoint's weights do not fit the model.
    """
    if isinstance(config, (str, os.PathLike)):
        cfg = Config.fromfile(os.fspath(config))
    else:
        cfg = copy.deepcopy(config)
    init_default_scope(cfg.get('default_scope', 'anomaly_plugin'))
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.cfg = cfg
    model.checkpoint_meta = dict(ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}
    return model.to(device).eval()


def checkpoint_error_message(err: BaseException, checkpoint: str, config: str) -> str:
    """A one-line-first message for a failure to load ``checkpoint``.

    Args:
        err: what loading the checkpoint raised.
        checkpoint: the checkpoint file, as the user named it.
        config: the config file, as the user named it.

    Returns:
        The error's own message for a missing or unsafe checkpoint;
        ``'<checkpoint> does not fit the model of <config>'`` followed by
        the details for mismatched weights (sizes or keys); otherwise
        ``'cannot load checkpoint <checkpoint>'`` followed by the error.
    """
    if isinstance(err, (UnsafeCheckpointError, FileNotFoundError)):
        return str(err)
    text = str(err)
    if isinstance(err, RuntimeError) and any(m in text for m in _MISMATCH_MARKERS):
        return f'{checkpoint} does not fit the model of {config}:\n{text}'
    return f'cannot load checkpoint {checkpoint}: {type(err).__name__}: {text}'


def build_inference_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline without the ground-truth transforms."""
    steps = [copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
             if _type_name(t['type']) not in _GT_TRANSFORMS]
    return Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t for t in steps])


def _under(path: str, folders: Sequence[str]) -> bool:
    real = osp.realpath(path)
    return any(real == f or real.startswith(f + os.sep) for f in folders)


def list_images(path: str, recursive: bool = False,
                exclude: Sequence[str] = ()) -> List[str]:
    """The images to score: an image file, or the image files of a folder.

    Files are recognised as the datasets do (:func:`is_image_file`): by
    extension, any case; hidden files (names starting with ``.``, e.g.
    macOS ``._x.png``) are skipped. A file named directly is always
    returned, whatever its name.

    Args:
        path: an image file or a folder.
        recursive: also scan the sub-folders (hidden ones are skipped).
        exclude: folders not to scan (e.g. an output folder inside
            ``path``).

    Returns:
        Paths below ``path`` (``path`` joined with the relative path),
        sorted by relative path, folder by folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the folder holds no image file.
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path} is neither an image file nor a folder')
    excluded = [osp.realpath(f) for f in exclude]
    if not recursive:
        files = _list_folder(path)
    else:
        files = []
        for folder, subdirs, names in os.walk(path):
            subdirs[:] = [d for d in subdirs if not d.startswith('.')
                          and not _under(osp.join(folder, d), excluded)]
            files += [osp.join(folder, n) for n in names if is_image_file(n)]
        files.sort(key=lambda f: osp.relpath(f, path).split(os.sep))
    if not files:
        where = 'or its sub-folders' if recursive else '(sub-folders not scanned)'
        raise ValueError(f'no image files ({", ".join(sorted(IMAGE_EXTENSIONS))}) '
                         f'in {path} {where}; hidden files are skipped')
    return files


class InferenceResult(NamedTuple):
    """The outcome for one image file.

    Attributes:
        img_path: the file.
        sample: the prediction (``AnomalyDataSample``), None on error.
        error: why the file could not be loaded, None on success.
    """

    img_path: str
    sample: Optional[Any]
    error: Optional[Exception]


def load_input(pipeline: Compose, img_path: str) -> dict:
    """Run one image file through the inference pipeline.

    Args:
        pipeline: from :func:`build_inference_pipeline`.
        img_path: image file.

    Returns:
        The packed inputs of the image.

    Raises:
        Exception: whatever the pipeline raises for the file (e.g.
            ``ValueError`` for an empty or undecodable file), or
            ``ValueError`` when the pipeline drops it.
    """
    data = pipeline(dict(img_path=img_path, mask_path=None, gt_label=0,
                         defect_type='unknown'))
    if data is None:
        raise ValueError(f'the inference pipeline dropped {img_path}')
    return data


def map_to_original(amap: torch.Tensor, ori_shape: Sequence[int]) -> np.ndarray:
    """(h, w) map at the input size -> (H, W) float32 at the image's size."""
    m = amap[None, None].float()
    m = torch.nn.functional.interpolate(m, size=tuple(ori_shape), mode='bilinear',
                                        align_corners=False)
    return m[0, 0].cpu().numpy()
