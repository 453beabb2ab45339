"""Write a heat-map panel per test image, one colour scale for the run."""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from anomaly_plugin.registry import HOOKS
from anomaly_plugin.structures import AnomalyDataSample
from anomaly_plugin.visualization import AnomalyVisualizer, colour_scale, resize_map

__all__ = ['AnomalyVisualizationHook', 'resize_map']


@HOOKS.register_module()
class AnomalyVisualizationHook(Hook):
    """Panels image | overlay | predicted mask | ground-truth mask.

    Off by default (``enable=False``). Panels are drawn at the original image
    size. The colour scale is the calibration range saved with the model when
    there is one, otherwise the min and max of the whole test run (gathered
    over ranks), never per image.

    The runner's visualizer draws the panels (an :class:`AnomalyVisualizer`;
    with another visualizer a private one draws them) and sends them to its
    backends (e.g. TensorBoard), tagged ``<defect>_<stem>`` at the runner's
    iteration; each panel is also written to ``<work_dir>/<out_dir>/<defect>_<stem>.png``.

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
        self._own_visualizer: Optional[AnomalyVisualizer] = None

    def _visualizers(self, runner):
        """(the visualizer that draws, another one to send the panels to or None)."""
        vis = getattr(runner, 'visualizer', None)
        if isinstance(vis, AnomalyVisualizer):
            return vis, None
        if self._own_visualizer is None:  # no backends; not a global instance
            self._own_visualizer = AnomalyVisualizer(name='anomaly_visualization_hook')
        return self._own_visualizer, vis

    def before_test(self, runner) -> None:
        self._items = []

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.enable:
            return
        for s in outputs:
            if s.get('bad_files'):  # a stand-in for a file that did not decode
                continue
            self._items.append(dict(
                img_path=s.img_path, mask_path=s.get('mask_path'),
                mask_threshold=s.get('mask_threshold'),
                label=int(s.gt_label) if 'gt_label' in s else 0,
                defect=s.get('defect_type', ''), score=float(s.pred_score),
                crop_box=s.get('crop_box'), box_id=s.get('box_id'),
                amap=s.anomaly_map.cpu().numpy().astype(np.float16)))

    def _scale(self, post):
        """The run's colour scale: calibrated, or the range of every rank's maps."""
        if post.has_normalization:
            return colour_scale(post)
        lo = min((float(i['amap'].min()) for i in self._items), default=np.inf)
        hi = max((float(i['amap'].max()) for i in self._items), default=-np.inf)
        lo_t = torch.tensor(-lo, dtype=torch.float64)
        hi_t = torch.tensor(hi, dtype=torch.float64)
        all_reduce(lo_t, op='max')
        all_reduce(hi_t, op='max')
        return colour_scale(post, -float(lo_t), float(hi_t))

    def after_test_epoch(self, runner, metrics=None) -> None:
        if not self.enable:
            return
        from anomaly_plugin.datasets.image_io import read_image, read_mask
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        post = model.postprocessor
        vmin, vmax = self._scale(post)
        out = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(out, exist_ok=True)
        visualizer, also_to = self._visualizers(runner)
        step = getattr(runner, 'iter', 0)
        threshold = float(post.pixel_threshold) if post.has_threshold else None
        for item in self._items:
            image = read_image(item['img_path'])  # (H, W, 3) RGB
            gt = read_mask(item['mask_path'], item['mask_threshold']) if item['mask_path'] else (
                np.zeros(image.shape[:2], np.uint8) if item['label'] == 0 else None)
            stem = osp.splitext(osp.basename(item['img_path']))[0]
            if item['crop_box'] is not None:  # a box of BoxCropDataset: its crop only
                x1, y1, x2, y2 = item['crop_box']
                image = image[y1:y2, x1:x2]
                gt = None if gt is None else gt[y1:y2, x1:x2]
                stem = f"{stem}_box{item['box_id']}"
            sample = AnomalyDataSample(metainfo=dict(img_path=item['img_path']))
            sample.set_anomaly_map(item['amap'].astype(np.float32))  # resized when drawn
            if gt is not None:
                sample.set_gt_mask(gt)
            name = f"{item['defect']}_{stem}"
            panel = visualizer.add_datasample(
                name, image, sample, out_file=osp.join(out, f'{name}.png'), step=step,
                vmin=vmin, vmax=vmax, pixel_threshold=threshold, alpha=self.alpha,
                title=f"{item['defect']}/{stem} score={item['score']:.4g}")
            if also_to is not None:
                also_to.add_image(name, panel, step)
        runner.logger.info(f'wrote {len(self._items)} panels to {out}')
        self._items = []
