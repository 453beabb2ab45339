"""Single-image inference from a config and a checkpoint."""
import copy
import os.path as osp
from typing import Iterable, List, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from anomaly_plugin.datasets.image_io import IMAGE_EXTENSIONS
from anomaly_plugin.registry import MODELS, TRANSFORMS

#: transforms that need ground truth and are dropped for inference
_GT_TRANSFORMS = ('LoadAnomalyMask',)


def _type_name(t) -> str:
    return (t if isinstance(t, str) else t.__name__).split('.')[-1]


def init_detector(config: Union[str, Config], checkpoint: str,
                  device: str = 'cpu') -> torch.nn.Module:
    """Build the model of ``config`` and load ``checkpoint`` (weights-only).

    Returns:
        The model in eval mode, with ``model.cfg`` set to the config.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    init_default_scope(cfg.get('default_scope', 'anomaly_plugin'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.cfg = cfg
    return model.to(device).eval()


def build_inference_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline without the ground-truth transforms."""
    steps = [copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
             if _type_name(t['type']) not in _GT_TRANSFORMS]
    return Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t for t in steps])


def list_images(path: str) -> List[str]:
    """An image file, or the image files of a folder (sorted, not recursive)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path} is neither an image file nor a folder')
    files = sorted(osp.join(path, f) for f in __import__('os').listdir(path)
                   if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f'no image files ({sorted(IMAGE_EXTENSIONS)}) in {path}')
    return files


@torch.no_grad()
def inference(model: torch.nn.Module, images: Union[str, Sequence[str]],
              batch_size: int = 8) -> Iterable:
    """Predict image files in batches.

    Yields:
        One ``AnomalyDataSample`` per image (``img_path``, ``ori_shape``,
        ``pred_score``, ``anomaly_map`` at the input size, and when the model
        is calibrated ``pred_label``, ``pred_mask``, ``norm_score``,
        ``norm_map``).
    """
    if isinstance(images, str):
        images = [images]
    pipeline = build_inference_pipeline(model.cfg)
    for start in range(0, len(images), batch_size):
        batch = [pipeline(dict(img_path=p, mask_path=None, gt_label=0,
                               defect_type='unknown'))
                 for p in images[start:start + batch_size]]
        yield from model.test_step(pseudo_collate(batch))


def map_to_original(amap: torch.Tensor, ori_shape: Sequence[int]) -> np.ndarray:
    """(h, w) map at the input size -> (H, W) float32 at the image's size."""
    m = amap[None, None].float()
    m = torch.nn.functional.interpolate(m, size=tuple(ori_shape), mode='bilinear',
                                        align_corners=False)
    return m[0, 0].cpu().numpy()
