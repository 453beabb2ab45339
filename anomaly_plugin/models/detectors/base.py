"""Thin MMEngine wrapper shared by every anomaly detector."""
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel

from anomaly_plugin.registry import MODELS
from anomaly_plugin.structures import AnomalyDataSample

from ..postprocess import AnomalyPostProcessor

ForwardResults = Union[Dict[str, torch.Tensor], List[AnomalyDataSample],
                       torch.Tensor]


class BaseAnomalyDetector(BaseModel, metaclass=ABCMeta):
    """Dispatches ``mode='loss'|'predict'|'tensor'`` to the algorithm core.

    Subclasses implement :meth:`loss` and :meth:`anomaly_map`; prediction
    (upsampling, blur, image score, thresholds) is shared here.

    Args:
        data_preprocessor: config or module; defaults to
            ``AnomalyDataPreprocessor`` with ImageNet statistics.
        postprocess: keyword arguments of :class:`AnomalyPostProcessor`.
        init_cfg: MMEngine initialisation config.
    """

    #: how the model learns statistics of normal images, the one fit protocol
    #: (:func:`anomaly_plugin.engine.fit_normal` drives it): ``None`` (it
    #: does not), ``'instead'`` (no gradient training: one pass over the
    #: training images is its training, run by ``FitLoop``; PatchCore, PaDiM)
    #: or ``'after'`` (after gradient training, a pass over the training
    #: images with the test pipeline, run by ``NormalFitHook`` before the
    #: thresholds are calibrated; e.g. MSCDAE's level statistics). The pass
    #: calls :meth:`fit_reset`, :meth:`fit_update` per batch and
    #: :meth:`fit_finish`.
    fit_stage: Optional[str] = None

    #: parts renamed since checkpoints were saved, ``{old prefix: new
    #: prefix}`` (e.g. ``{'net.': 'autoencoder.'}``): such checkpoints load
    renamed_parts: Dict[str, str] = {}

    def __init__(self, data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 postprocess: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='AnomalyDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.postprocessor = AnomalyPostProcessor(**(postprocess or {}))
        # (H, W) of the images trained / fitted on, (0, 0) until then; saved
        # with the checkpoint so prediction can refuse another input size
        self.register_buffer('input_size', torch.zeros(2, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # parts saved under an earlier name load under the current one
        for old, new in self.renamed_parts.items():
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
        # checkpoints written before the input size was recorded load as unknown
        state_dict.setdefault(prefix + 'input_size', torch.zeros(2, dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- the fit protocol (see ``fit_stage``) ---------------------------------
    def fit_reset(self) -> None:
        """Start a fit: forget what earlier passes accumulated."""
        raise NotImplementedError(f'{type(self).__name__} fits nothing (fit_stage=None)')

    def fit_update(self, inputs: torch.Tensor, indices: torch.Tensor) -> None:
        """Accumulate a batch of normal images, in eval mode, without gradients.

        Args:
            inputs: (B, 3, H, W) normalised images.
            indices: (B,) their dataset indices (order-independent fits put
                every rank's samples in dataset order with them).
        """
        raise NotImplementedError(f'{type(self).__name__} fits nothing (fit_stage=None)')

    def fit_finish(self, progress: bool = True) -> Dict[str, List[float]]:
        """Fit from what was accumulated.

        Args:
            progress: show progress of long fits (a coreset selection).

        Returns:
            Statistics worth logging, ``{name: [values]}`` (may be empty).
        """
        raise NotImplementedError(f'{type(self).__name__} fits nothing (fit_stage=None)')

    def note_input_size(self, inputs: torch.Tensor) -> None:
        """Record the (H, W) of a training batch (B, C, H, W)."""
        self.input_size.copy_(torch.tensor(inputs.shape[-2:]))

    def check_input_size(self, inputs: torch.Tensor) -> None:
        """Refuse inputs of another size than the training images.

        Features and reconstructions of another scale change every score
        without any other sign, so a test pipeline that resizes differently
        from the training one is an error.
        """
        trained = tuple(int(v) for v in self.input_size)
        got = tuple(inputs.shape[-2:])
        if trained != (0, 0) and trained != got:
            raise ValueError(
                f'{type(self).__name__} was trained on {trained[0]}x{trained[1]} (HxW) '
                f'inputs but is given {got[0]}x{got[1]}: the test pipeline resizes '
                'differently from the training one (check the Resize steps / img_size '
                'of the config used for testing against the one used for training)')

    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[List[AnomalyDataSample]] = None,
                mode: str = 'tensor') -> ForwardResults:
        """Args:
            inputs: (B, 3, H, W) normalised images.
            data_samples: the batch's samples (needed for ``'predict'``
                only to carry the ground truth along).
            mode: ``'loss'`` -> dict of losses, ``'predict'`` -> samples with
                predictions, ``'tensor'`` -> (B, 1, h, w) raw anomaly map.
        """
        if mode == 'loss':
            self.note_input_size(inputs)
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.anomaly_map(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    @abstractmethod
    def loss(self, inputs: torch.Tensor,
             data_samples: Optional[List[AnomalyDataSample]] = None
             ) -> Dict[str, torch.Tensor]:
        """Training losses of a batch of normal images."""

    @abstractmethod
    def anomaly_map(self, inputs: torch.Tensor) -> torch.Tensor:
        """Raw anomaly map (B, 1, h, w), any resolution, larger = anomalous."""

    def forward_maps(self, inputs: torch.Tensor
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Raw map (B, 1, h, w) and image scores (B,), or None to take the
        score from the smoothed map (the post-processor's ``reduction``)."""
        return self.anomaly_map(inputs), None

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[AnomalyDataSample]] = None
                ) -> List[AnomalyDataSample]:
        """Scores, maps and (when calibrated) labels and masks per image.

        Returns:
            The samples (new ones when none were given) with ``pred_score``,
            ``anomaly_map`` (H, W) at the input size, raw and unnormalised;
            with a calibrated threshold also ``pred_label``, ``pred_mask``,
            ``norm_score`` and ``norm_map`` in [0, 1] (threshold at 0.5).
        """
        self.check_input_size(inputs)
        raw, own_scores = self.forward_maps(inputs)  # (B, 1, h, w), (B,) or None
        maps, scores = self.postprocessor(raw, inputs.shape[-2:])
        if own_scores is not None:
            scores = own_scores.float()
        if data_samples is None:
            data_samples = [AnomalyDataSample() for _ in range(inputs.shape[0])]
        post = self.postprocessor
        if post.has_threshold:
            labels = (scores >= post.image_threshold).long()
            masks = (maps >= post.pixel_threshold).to(torch.uint8)
        if post.has_normalization:
            norm_scores = post.normalize_scores(scores)
            norm_maps = post.normalize_maps(maps)
        for i, sample in enumerate(data_samples):
            sample.set_pred_score(scores[i])
            sample.set_anomaly_map(maps[i])
            if post.has_threshold:
                sample.pred_label = labels[i]
                sample.pred_mask = masks[i]
            if post.has_normalization:
                sample.norm_score = norm_scores[i]
                sample.norm_map = norm_maps[i]
        return data_samples
