"""``AnomalyInferencer``: MMEngine's inferencer protocol for anomaly detectors."""
import copy
import functools
import os
import os.path as osp
from typing import Callable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import COLLATE_FUNCTIONS, pseudo_collate
from mmengine.device import get_device
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope
from torch import nn

from anomaly_plugin.datasets.image_io import read_image
from anomaly_plugin.registry import INFERENCERS, SCOPE, VISUALIZERS
from anomaly_plugin.structures import AnomalyDataSample
from anomaly_plugin.visualization import AnomalyVisualizer, colour_scale

from .inference import init_detector, list_images, map_to_original
from .inputs import InferenceBatch, InputPipeline, InputType, as_rgb, check_input, one_line
from .results import output_names

InputsType = Union[InputType, Sequence[InputType]]


@INFERENCERS.register_module()
class AnomalyInferencer(BaseInferencer):
    """Scores, heat-maps and panels for image files, folders and arrays.

    The steps of MMEngine's :class:`~mmengine.infer.BaseInferencer`:

    * :meth:`preprocess`: each input through the config's test pipeline
      without its ground-truth transforms; an input that cannot be loaded
      (missing, empty, truncated, not an image, ...) is kept with its error
      and does not stop the others. Loaded inputs are collated
      ``batch_size`` at a time.
    * :meth:`forward`: ``model.test_step`` on each batch.
    * :meth:`visualize`: image | heat-map overlay | predicted mask panels
      drawn by an :class:`AnomalyVisualizer`, written to ``out_dir``,
      shown or returned.
    * :meth:`postprocess`: one dict per input (or the data samples).

    The checkpoint is loaded weights-only (see :func:`init_detector`); a
    missing, unsafe or mismatched checkpoint raises the errors of
    :func:`init_detector` (:func:`checkpoint_error_message` words them for
    users).

    Example::

        inferencer = AnomalyInferencer('configs/padim/padim_resnet18_mvtec.py',
                                       'work_dirs/padim/epoch_1.pth', device='cpu')
        out = inferencer(['a.png', 'b.png'], batch_size=8, out_dir='panels')
        out['predictions'][0]  # {'img_path': 'a.png', 'pred_score': 3.2, ...}

    Args:
        model: a config file, a :class:`Config` or a config dict (copied,
            not changed); or a model from :func:`init_detector` (with its
            ``cfg``), used as it is.
        weights: the checkpoint; required with a config, None with a model.
        device: where the model runs; None for MMEngine's default device
            (ignored for a given model).
        scope: registry scope, used when the config sets no
            ``default_scope``.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'show', 'wait_time', 'out_dir', 'draw_pred', 'vmin', 'vmax',
                             'alpha', 'return_vis'}
    postprocess_kwargs: set = {'return_maps'}

    def __init__(self, model: Union[str, os.PathLike, Config, dict, nn.Module],
                 weights: Optional[str] = None, device: Optional[str] = None,
                 scope: str = SCOPE) -> None:
        self._given_model: Optional[nn.Module] = None
        self._num_visualized = 0  # inputs seen by visualize() in this call
        self._names: List[str] = []  # output names of this call's inputs
        if isinstance(model, nn.Module):
            if weights is not None:
                raise ValueError('weights are loaded by init_detector; give a model '
                                 'or a config and weights, not both')
            if getattr(model, 'cfg', None) is None:
                raise ValueError('the model has no cfg: build it with init_detector')
            self._given_model = model
            cfg = copy.deepcopy(model.cfg)
        else:
            if weights is None:
                raise ValueError('a checkpoint (weights) is required')
            if isinstance(model, (str, os.PathLike)):
                cfg = Config.fromfile(os.fspath(model))
            elif isinstance(model, Config):
                cfg = copy.deepcopy(model)
            elif isinstance(model, dict):
                cfg = Config(copy.deepcopy(dict(model)))
            else:
                raise TypeError('model must be a config file, a Config, a dict or a '
                                f'model from init_detector, got {type(model)}')
        if cfg.get('default_scope') is None:
            cfg.default_scope = scope
        init_default_scope(cfg.default_scope)
        if device is None and self._given_model is None:
            device = get_device()
        super().__init__(cfg, weights, device, cfg.default_scope)

    # ----------------------------------------------------------------- set-up
    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: Optional[str] = 'cpu') -> nn.Module:
        """The given model, or the config's model with ``weights`` loaded
        weights-only and strictly (:func:`init_detector`)."""
        if self._given_model is not None:
            return self._given_model.eval()
        return init_detector(cfg, weights, device or 'cpu')

    def _init_pipeline(self, cfg: Config) -> Callable[[InputType], dict]:
        """The test pipeline for files and arrays (see :class:`InputPipeline`)."""
        return InputPipeline(cfg)

    def _init_collate(self, cfg: Config) -> Callable:
        """The test dataloader's ``collate_fn`` (a function, a registered name
        or a dict with its arguments); ``pseudo_collate`` when it has none."""
        collate = cfg.get('test_dataloader', {}).get('collate_fn') or dict(
            type=pseudo_collate)
        if not isinstance(collate, dict):
            collate = dict(type=collate)
        collate = dict(collate)
        fn = collate.pop('type')
        if isinstance(fn, str):
            with COLLATE_FUNCTIONS.switch_scope_and_registry(self.scope) as registry:
                fn = registry.get(fn)
        return functools.partial(fn, **collate) if collate else fn

    def _init_visualizer(self, cfg: Config) -> AnomalyVisualizer:
        """A private visualizer of the config's class (an
        :class:`AnomalyVisualizer` when the config names another one).

        Panels go to ``out_dir`` (see :meth:`visualize`), not to the
        config's vis backends, and the visualizer is not made MMEngine's
        current instance.
        """
        vis_cfg = dict(cfg.get('visualizer') or {})
        cls = vis_cfg.pop('type', AnomalyVisualizer)
        if isinstance(cls, str):
            with VISUALIZERS.switch_scope_and_registry(self.scope) as registry:
                cls = registry.get(cls)
        if not (isinstance(cls, type) and issubclass(cls, AnomalyVisualizer)):
            cls, vis_cfg = AnomalyVisualizer, {}
        for key in ('name', 'vis_backends', 'save_dir'):
            vis_cfg.pop(key, None)
        return cls(name=f'anomaly_inferencer_{id(self)}', **vis_cfg)

    def _inputs_to_list(self, inputs: InputsType) -> list:
        """One input or a sequence -> a list; a folder -> its image files
        (:func:`list_images`: sorted, hidden files skipped, sub-folders not
        scanned); an (N, H, W, C) array -> N images."""
        if isinstance(inputs, (str, os.PathLike)):
            return list_images(os.fspath(inputs)) if osp.isdir(inputs) else [inputs]
        if isinstance(inputs, np.ndarray):
            return list(inputs) if inputs.ndim == 4 else [inputs]
        if isinstance(inputs, torch.Tensor):
            raise TypeError('give images as files or numpy arrays, not tensors')
        return list(inputs)

    # ------------------------------------------------------------------ steps
    def preprocess(self, inputs: list, batch_size: int = 1,
                   **kwargs) -> Iterator[InferenceBatch]:
        """Load the inputs; group them for the forward passes.

        Args:
            inputs: from :meth:`_inputs_to_list`.
            batch_size: loaded inputs per batch; inputs that fail to load
                ride along with the batch they come in.

        Yields:
            One :class:`InferenceBatch` per forward pass, the inputs in order.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be at least 1, got {batch_size}')
        items, errors, loaded = [], [], []
        for index, item in enumerate(inputs):
            try:
                check_input(item, index)
                loaded.append(self.pipeline(item))
                err = None
            except Exception as e:  # one bad input must not stop the others
                err = e if isinstance(item, (str, os.PathLike)) or str(e).startswith(
                    'input ') else ValueError(f'input {index}: {one_line(e)}')
            items.append(item)
            errors.append(err)
            if len(loaded) == batch_size:
                yield InferenceBatch(items, errors, self.collate_fn(loaded))
                items, errors, loaded = [], [], []
        if items:
            yield InferenceBatch(items, errors, self.collate_fn(loaded) if loaded else None)

    @torch.no_grad()
    def forward(self, inputs: InferenceBatch, **kwargs) -> List[AnomalyDataSample]:
        """``model.test_step`` on the loaded inputs of a batch.

        Args:
            inputs: one batch from :meth:`preprocess`.

        Returns:
            One sample per input, in order: the model's prediction
            (``pred_score``, ``anomaly_map`` at the input size, and when
            calibrated ``pred_label``, ``pred_mask``, ``norm_score``,
            ``norm_map``), or for an input that could not be loaded a sample
            whose metainfo holds ``img_path`` (None for an array), ``error``
            (the message) and ``exception``.
        """
        preds = iter(self.model.test_step(inputs.data) if inputs.data is not None else ())
        out = []
        for item, err in zip(inputs.inputs, inputs.errors):
            if err is None:
                out.append(next(preds))
            else:
                path = os.fspath(item) if isinstance(item, (str, os.PathLike)) else None
                out.append(AnomalyDataSample(metainfo=dict(
                    img_path=path, error=one_line(err), exception=err)))
        return out

    def visualize(self, inputs: list, preds: List[AnomalyDataSample], show: bool = False,
                  wait_time: float = 0, out_dir: str = '', draw_pred: bool = True,
                  vmin: Optional[float] = None, vmax: Optional[float] = None,
                  alpha: Optional[float] = None,
                  return_vis: bool = False) -> List[Optional[np.ndarray]]:
        """Panels image | heat-map overlay | predicted mask (no ground truth).

        Nothing is drawn unless ``show``, ``out_dir`` or ``return_vis``. The
        colour scale is the checkpoint's calibration range when it has one,
        otherwise each image's own min and max (as ``tools/infer.py``), unless
        ``vmin`` / ``vmax`` are given. The predicted mask is the map at the
        image's size above the calibrated pixel threshold (grey without one).

        Args:
            inputs: the inputs of ``preds``, in order.
            preds: from :meth:`forward`.
            show: show each panel in a window.
            wait_time: seconds a window waits (0: until a key is pressed).
            out_dir: when given, write ``<out_dir>/<name>_panel.png``, where
                ``<name>`` is the file's path relative to the deepest folder
                common to the call's files (``<index>`` for an array, counted
                over the call; see :func:`~anomaly_plugin.apis.results.output_names`),
                so inputs with the same base name in different folders keep
                their own panels.
            draw_pred: draw the heat-map and the mask (False: the image alone).
            vmin, vmax: a fixed colour scale.
            alpha: heat-map weight in the overlay (None: the visualizer's).
            return_vis: return the panels.

        Returns:
            The panels ((H + 20, 4 * W, 3) uint8 RGB, None for inputs that
            could not be loaded) when ``return_vis``, else an empty list.
        """
        first = self._num_visualized
        self._num_visualized += len(preds)
        if not (show or out_dir or return_vis):
            return []
        post = self.model.postprocessor
        if vmin is None and vmax is None:
            vmin, vmax = colour_scale(post)
        threshold = float(post.pixel_threshold) if post.has_threshold else None
        panels = []
        for index, (item, pred) in enumerate(zip(inputs, preds), start=first):
            if 'error' in pred:
                panels.append(None)
                continue
            name = self._names[index] if index < len(self._names) else f'{index:08d}'
            if isinstance(item, np.ndarray):
                image = as_rgb(item)
            else:
                image = read_image(os.fspath(item), strict=False)
            out_file = osp.join(out_dir, f'{name}_panel.png') if out_dir else None
            panel = self.visualizer.add_datasample(
                name, image, pred, draw_gt=False, draw_pred=draw_pred, show=show,
                wait_time=wait_time, out_file=out_file, vmin=vmin, vmax=vmax,
                pixel_threshold=threshold, alpha=alpha)
            panels.append(panel if return_vis else None)
        return panels if return_vis else []

    def postprocess(self, preds: List[AnomalyDataSample], visualization: list,
                    return_datasamples: bool = False, return_maps: bool = False) -> dict:
        """The results of one or more batches.

        Args:
            preds: from :meth:`forward`.
            visualization: from :meth:`visualize`.
            return_datasamples: give the samples of :meth:`forward` instead
                of dicts.
            return_maps: add the maps at each image's own size to the dicts.

        Returns:
            ``dict(predictions=..., visualization=visualization)``, with per
            input a dict: ``img_path`` (None for an array), ``pred_score``
            (float; None when the input could not be loaded), ``error`` (why
            it could not be loaded, naming the file or the input's position,
            else None), ``warning`` (what was noticed while loading it, e.g.
            several frames; None when nothing); with a calibrated checkpoint
            ``pred_label`` (1: anomalous) and ``norm_score`` (in [0, 1],
            threshold at 0.5); with ``return_maps`` ``anomaly_map`` ((H, W)
            float32, raw scores) and, when calibrated, ``pred_mask`` ((H, W)
            uint8, 1 where the map reaches the pixel threshold).
        """
        if return_datasamples:
            return dict(predictions=list(preds), visualization=visualization)
        post = self.model.postprocessor
        threshold = float(post.pixel_threshold) if post.has_threshold else None
        results = []
        for s in preds:
            if 'error' in s:
                results.append(dict(img_path=s.img_path, pred_score=None, error=s.error))
                continue
            warnings = s.get('load_warnings')
            res = dict(img_path=s.get('img_path'), pred_score=float(s.pred_score),
                       error=None, warning='; '.join(warnings) if warnings else None)
            if 'pred_label' in s:
                res['pred_label'] = int(s.pred_label)
            if 'norm_score' in s:
                res['norm_score'] = float(s.norm_score)
            if return_maps:
                amap = map_to_original(s.anomaly_map, s.ori_shape)  # (H, W)
                res['anomaly_map'] = amap
                if threshold is not None:
                    res['pred_mask'] = (amap >= threshold).astype(np.uint8)
            results.append(res)
        return dict(predictions=results, visualization=visualization)

    # ---------------------------------------------------------------- calling
    def stream(self, inputs: InputsType, return_datasamples: bool = False,
               batch_size: int = 1, **kwargs) -> Iterator[dict]:
        """:meth:`__call__` one batch at a time, for long input lists.

        Args:
            inputs: as for :meth:`__call__`.
            return_datasamples: as for :meth:`__call__`.
            batch_size: as for :meth:`__call__`.
            **kwargs: as for :meth:`__call__`.

        Yields:
            The :meth:`postprocess` result of each batch, as soon as it is
            predicted (and drawn).
        """
        pre_kwargs, fwd_kwargs, vis_kwargs, post_kwargs = self._dispatch_kwargs(**kwargs)
        self._num_visualized = 0
        inputs = self._inputs_to_list(inputs)
        self._names = output_names(inputs)
        for batch in self.preprocess(inputs, batch_size=batch_size, **pre_kwargs):
            preds = self.forward(batch, **fwd_kwargs)
            visualization = self.visualize(batch.inputs, preds, **vis_kwargs)
            yield self.postprocess(preds, visualization, return_datasamples, **post_kwargs)

    def __call__(self, inputs: InputsType, return_datasamples: bool = False,
                 batch_size: int = 1, **kwargs) -> dict:
        """Predict (and draw) images.

        Args:
            inputs: an image file, a folder (its image files), an (H, W, 3)
                RGB / (H, W) gray uint8 array, or a sequence of files and
                arrays.
            return_datasamples: give the samples instead of dicts (see
                :meth:`forward`).
            batch_size: images per forward pass.
            **kwargs: arguments of :meth:`visualize` (``show``,
                ``wait_time``, ``out_dir``, ``draw_pred``, ``vmin``,
                ``vmax``, ``alpha``, ``return_vis``) and of
                :meth:`postprocess` (``return_maps``).

        Returns:
            ``dict(predictions=[one per input, in order], visualization=[...])``
            (see :meth:`postprocess` and :meth:`visualize`).
        """
        results = dict(predictions=[], visualization=[])
        for part in self.stream(inputs, return_datasamples, batch_size, **kwargs):
            results['predictions'].extend(part['predictions'])
            results['visualization'].extend(part['visualization'])
        return results


__all__ = ['AnomalyInferencer']
