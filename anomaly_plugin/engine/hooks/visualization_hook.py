"""Write a heat-map panel per test image, one colour scale for the run."""
import os
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from anomaly_plugin.registry import HOOKS
from anomaly_plugin.visualization import render_panel


def resize_map(amap: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(h, w) float map -> (H, W) float32 with bilinear interpolation."""
    amap = np.asarray(amap, np.float32)
    if tuple(amap.shape) == tuple(shape):
        return amap
    return cv2.resize(amap, (int(shape[1]), int(shape[0])),
                      interpolation=cv2.INTER_LINEAR)


@HOOKS.register_module()
class AnomalyVisualizationHook(Hook):
    """Panels image | overlay | predicted mask | ground-truth mask.

    Off by default (``enable=False``). Panels are drawn at the original image
    size. The colour scale is the calibration range saved with the model when
    there is one, otherwise the min and max of the whole test run (gathered
    over ranks), never per image.

    Args:
        enable: draw panels during ``test``.
        out_dir: folder under the work dir.
        alpha: heat-map weight in the overlay.
    """

    priority = 'LOW'

    def __init__(self, enable: bool = False, out_dir: str = 'vis',
                 alpha: float = 0.5):
        self.enable = enable
        self.out_dir = out_dir
        self.alpha = alpha
        self._items: List[dict] = []

    def before_test(self, runner) -> None:
        self._items = []

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.enable:
            return
        for s in outputs:
            self._items.append(dict(
                img_path=s.img_path, mask_path=s.get('mask_path'),
                mask_threshold=s.get('mask_threshold'),
                label=int(s.gt_label) if 'gt_label' in s else 0,
                defect=s.get('defect_type', ''), score=float(s.pred_score),
                amap=s.anomaly_map.cpu().numpy().astype(np.float16)))

    def _scale(self, post):
        if post.has_normalization:
            return float(post.pixel_min), float(post.pixel_max)
        lo = min((float(i['amap'].min()) for i in self._items), default=np.inf)
        hi = max((float(i['amap'].max()) for i in self._items), default=-np.inf)
        lo_t = torch.tensor(-lo, dtype=torch.float64)
        hi_t = torch.tensor(hi, dtype=torch.float64)
        all_reduce(lo_t, op='max')
        all_reduce(hi_t, op='max')
        return -float(lo_t), float(hi_t)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if not self.enable:
            return
        from anomaly_plugin.datasets.image_io import read_image, read_mask
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        post = model.postprocessor
        vmin, vmax = self._scale(post)
        out = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(out, exist_ok=True)
        for item in self._items:
            image = read_image(item['img_path'])
            amap = resize_map(item['amap'], image.shape[:2])
            pred = amap >= float(post.pixel_threshold) if post.has_threshold else None
            gt = read_mask(item['mask_path'], item['mask_threshold']) if item['mask_path'] else (
                np.zeros(image.shape[:2], np.uint8) if item['label'] == 0 else None)
            stem = osp.splitext(osp.basename(item['img_path']))[0]
            panel = render_panel(image, amap, vmin, vmax, pred, gt, alpha=self.alpha,
                                 title=f"{item['defect']}/{stem} score={item['score']:.4g}")
            cv2.imwrite(osp.join(out, f"{item['defect']}_{stem}.png"),
                        cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        runner.logger.info(f'wrote {len(self._items)} panels to {out}')
        self._items = []
