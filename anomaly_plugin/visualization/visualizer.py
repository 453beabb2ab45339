"""An MMEngine visualizer that draws anomaly panels and sends them to its backends."""
import os
import os.path as osp
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.visualization import Visualizer

from anomaly_plugin.datasets.image_io import as_rgb
from anomaly_plugin.registry import VISUALIZERS

from .panel import render_panel, resize_map

_Array = Union[np.ndarray, torch.Tensor]


def _numpy(value: _Array) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _resize_mask(mask: _Array, shape: Sequence[int]) -> np.ndarray:
    """(h, w) mask -> (H, W) uint8 with nearest-neighbour interpolation."""
    mask = _numpy(mask).astype(np.uint8)
    if tuple(mask.shape) == tuple(shape):
        return mask
    return cv2.resize(mask, (int(shape[1]), int(shape[0])),
                      interpolation=cv2.INTER_NEAREST)


def write_image(path: str, image: np.ndarray) -> None:
    """Write an RGB (or gray) ``image`` to ``path`` (PNG, JPEG, ... by extension).

    The folder is created when missing; any path works (non-ASCII too).

    Args:
        path: output file.
        image: (H, W, 3) uint8 RGB or (H, W) uint8.

    Raises:
        OSError: OpenCV cannot encode the image for that extension.
    """
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(osp.splitext(path)[1] or '.png', image)
    if not ok:
        raise OSError(f'cannot encode {path}')
    buf.tofile(path)


@VISUALIZERS.register_module()
class AnomalyVisualizer(Visualizer):
    """Draws image | heat-map overlay | predicted mask | ground-truth mask panels.

    :meth:`add_datasample` draws the panel of one image
    (:func:`~anomaly_plugin.visualization.render_panel`), sends it to every
    vis backend with ``add_image`` (PNG files for ``LocalVisBackend``, image
    summaries for ``TensorboardVisBackend``, ...) and writes it to
    ``out_file`` when given. The runner's scalars (losses, learning rate,
    metrics from the ``LoggerHook``) reach the same backends through the
    inherited ``add_scalars``.

    As in MMEngine, only the main process sends to the backends; files named
    by ``out_file`` are written by every process that draws.

    Args:
        name: instance name (``Visualizer.get_instance`` key).
        vis_backends: backend configs or instances, e.g.
            ``[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]``.
        save_dir: the backends' folder (``<save_dir>/vis_data``); the
            runner sets its log dir. Backends that need one are skipped
            without it.
        alpha: default weight of the heat-map in the overlay tile.
        **kwargs: other :class:`~mmengine.visualization.Visualizer` arguments.
    """

    def __init__(self, name: str = 'visualizer', vis_backends=None,
                 save_dir: Optional[str] = None, alpha: float = 0.5, **kwargs):
        super().__init__(name=name, vis_backends=vis_backends, save_dir=save_dir,
                         **kwargs)
        self.alpha = float(alpha)

    def draw_panel(self, image: np.ndarray, data_sample=None, draw_gt: bool = True,
                   draw_pred: bool = True, vmin: Optional[float] = None,
                   vmax: Optional[float] = None,
                   pixel_threshold: Optional[float] = None, title: str = '',
                   alpha: Optional[float] = None) -> np.ndarray:
        """The panel of one image, without sending it anywhere.

        Args:
            image: (H, W, 3) uint8 RGB (or (H, W) gray) at the size to draw.
            data_sample: an ``AnomalyDataSample`` (or any data element) with
                ``anomaly_map`` (h, w) at any size, and optionally
                ``pred_mask`` (h, w) and ``gt_mask`` (h', w'); maps are resized
                to the image (bilinear), masks with nearest neighbours.
            draw_gt: draw the ground-truth mask tile (grey when the sample
                has no ``gt_mask``).
            draw_pred: draw the heat-map overlay and the predicted mask; when
                False the overlay tile is the plain image.
            vmin, vmax: colour scale of the heat-map; each one that is None
                is the map's own min / max (a per-image scale).
            pixel_threshold: when given, the predicted mask is
                ``map >= pixel_threshold`` on the resized map; otherwise the
                sample's ``pred_mask`` (grey tile when it has none).
            title: text above the tiles.
            alpha: heat-map weight in the overlay; None for the
                visualizer's ``alpha``.

        Returns:
            (H + 20, 4 * W, 3) uint8 RGB.
        """
        image = as_rgb(image)
        shape = image.shape[:2]
        sample = data_sample if data_sample is not None else {}
        alpha = self.alpha if alpha is None else float(alpha)
        pred_mask = gt_mask = None
        if draw_pred and 'anomaly_map' in sample:
            amap = resize_map(_numpy(sample.anomaly_map), shape)  # (H, W)
            lo = float(amap.min()) if vmin is None else float(vmin)
            hi = float(amap.max()) if vmax is None else float(vmax)
            if pixel_threshold is not None:
                pred_mask = (amap >= float(pixel_threshold)).astype(np.uint8)
            elif 'pred_mask' in sample:
                pred_mask = _resize_mask(sample.pred_mask, shape)
        else:  # no heat-map: the overlay tile shows the image alone
            amap, lo, hi, alpha = np.zeros(shape, np.float32), 0.0, 1.0, 0.0
        if draw_gt and 'gt_mask' in sample:
            gt_mask = _resize_mask(sample.gt_mask, shape)
        return render_panel(image, amap, lo, hi, pred_mask, gt_mask, title=title,
                            alpha=alpha)

    def add_datasample(self, name: str, image: np.ndarray, data_sample=None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: Optional[str] = None,
                       step: int = 0, vmin: Optional[float] = None,
                       vmax: Optional[float] = None,
                       pixel_threshold: Optional[float] = None,
                       title: Optional[str] = None,
                       alpha: Optional[float] = None) -> np.ndarray:
        """Draw the panel of one image and record it.

        The panel goes to every vis backend (``add_image(name, panel,
        step)``), to ``out_file`` when given, and to a window when ``show``.

        Args:
            name: image name: the backends' tag (LocalVisBackend writes
                ``vis_image/<name>_<step>.png``).
            image: (H, W, 3) uint8 RGB (or (H, W) gray), e.g. from
                :func:`~anomaly_plugin.datasets.image_io.read_image`.
            data_sample: the prediction (see :meth:`draw_panel`).
            draw_gt: draw the ground-truth mask tile.
            draw_pred: draw the heat-map overlay and the predicted mask.
            show: also show the panel in a window.
            wait_time: seconds the window waits (0: until a key is pressed).
            out_file: also write the panel there (PNG by extension).
            step: global step for the backends.
            vmin, vmax: colour scale (see :meth:`draw_panel`).
            pixel_threshold: threshold of the predicted mask (see
                :meth:`draw_panel`).
            title: text above the tiles; None for ``name``, the sample's
                ``pred_score`` and its ``OK``/``NG`` label when it has one.
            alpha: heat-map weight in the overlay.

        Returns:
            The panel, (H + 20, 4 * W, 3) uint8 RGB.
        """
        if title is None:
            title = name
            sample = data_sample if data_sample is not None else {}
            if draw_pred and 'pred_score' in sample:
                title += f' score={float(sample.pred_score):.4g}'
                if 'pred_label' in sample:
                    title += ' NG' if int(sample.pred_label) else ' OK'
        panel = self.draw_panel(image, data_sample, draw_gt=draw_gt, draw_pred=draw_pred,
                                vmin=vmin, vmax=vmax, pixel_threshold=pixel_threshold,
                                title=title, alpha=alpha)
        if show:
            self.show(panel, win_name=name, wait_time=wait_time)
        if out_file is not None:
            write_image(out_file, panel)
        self.add_image(name, panel, step)
        return panel
