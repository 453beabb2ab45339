"""Synthetic anomalies on normal training images, as a pipeline transform."""
from typing import Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import MessageHub

from anomaly_plugin.registry import TRANSFORMS

from ..synthesis.anomalies import build_anomaly_kind


def current_epoch() -> int:
    """The runner's current epoch from MMEngine's message hub (0 outside a run)."""
    hub = MessageHub.get_current_instance()
    return int(hub.get_info('epoch', 0) or 0)


def sample_rng(results: dict, seed: int, owner: str, stream: int = 0) -> np.random.Generator:
    """A sample's own generator, seeded by ``(seed, epoch, sample_idx, stream)``:
    the same draws whatever the worker / rank layout, other draws each epoch.

    Args:
        results: the pipeline's dict (``sample_idx`` is set by MMEngine datasets).
        seed: base seed.
        owner: the transform's name, for the error message.
        stream: separates the draws of different transforms of one sample.
    """
    idx = results.get('sample_idx')
    if idx is None:
        raise KeyError(f"{owner}: no 'sample_idx' for {results.get('img_path')!r}; it "
                       "needs MMEngine's dataset index to draw reproducibly")
    return np.random.default_rng([int(seed), current_epoch(), int(idx), int(stream)])


@TRANSFORMS.register_module()
class SynthesizeAnomaly(BaseTransform):
    """Draw a synthetic anomaly on the image and record its exact mask.

    With probability ``prob`` one of ``kinds`` (chosen uniformly) is drawn
    on ``results['img']`` (H, W, 3 uint8); otherwise the image is left as it
    is. Writes ``img`` (the image with the anomaly), ``gt_mask`` ((H, W)
    uint8, 1 exactly where a pixel changed), ``gt_label`` and
    ``anomaly_kind`` (the kind's class name, or ``'none'``), and with
    ``keep_clean`` the input image as ``clean_img`` (packed by
    :class:`PackAnomalyInputs` for models that restore it, e.g. DRAEM). Place
    it after the geometric transforms (resize, flips), before packing.

    Reproducible: every draw uses its own generator seeded by ``(seed,
    epoch, sample_idx)``, so a sample gets the same anomaly in an epoch
    whatever the number of dataloader workers or ranks, another one in the
    next epoch, and two samples never share a generator. ``sample_idx`` is
    set by MMEngine datasets; the epoch is read from MMEngine's message hub,
    which the runner updates before each epoch (dataloader workers started
    for the epoch see it; ``persistent_workers=True`` keeps the epoch at
    which the workers started, so the draws then repeat across epochs).

    Args:
        kinds: anomaly kinds, dicts with ``type`` ``'PerlinAnomaly'``,
            ``'CutPasteAnomaly'``, ``'ScarAnomaly'`` (or a class) and its
            arguments, see :mod:`anomaly_plugin.datasets.synthesis.anomalies`.
        prob: probability that a sample gets an anomaly.
        labels: ``'binary'``: ``gt_label`` 1 when pixels changed, else 0;
            ``'kind'``: 0 for none, ``i + 1`` for ``kinds[i]`` (CutPaste's
            classification task).
        foreground: where anomalies may go: None (anywhere); ``dict(threshold=T,
            invert=False)``: pixels whose gray level is above ``T`` (below it
            with ``invert``), for objects on a dark (bright) background; or
            ``'mask'``: ``results['foreground_mask']`` set by an earlier
            transform ((H, W), nonzero = foreground).
        keep_clean: keep the input image as ``clean_img``.
        seed: base seed.
    """

    LABELS = ('binary', 'kind')

    def __init__(self, kinds: Sequence[dict] = (dict(type='PerlinAnomaly'), ),
                 prob: float = 0.5, labels: str = 'binary',
                 foreground: Union[None, dict, str] = None, keep_clean: bool = False,
                 seed: int = 0):
        if not kinds:
            raise ValueError('SynthesizeAnomaly: give at least one kind')
        if not 0 <= prob <= 1:
            raise ValueError(f'SynthesizeAnomaly: prob must be in [0, 1], got {prob}')
        if labels not in self.LABELS:
            raise ValueError(f'SynthesizeAnomaly: labels must be one of {self.LABELS}, '
                             f'got {labels!r}')
        if not (foreground is None or foreground == 'mask'
                or (isinstance(foreground, dict) and 'threshold' in foreground)):
            raise ValueError("SynthesizeAnomaly: foreground must be None, 'mask' or "
                             f'dict(threshold=..., invert=False), got {foreground!r}')
        self.kinds = [build_anomaly_kind(k) for k in kinds]
        self.prob, self.labels, self.foreground = float(prob), labels, foreground
        self.keep_clean, self.seed = bool(keep_clean), int(seed)

    def rng(self, results: dict) -> np.random.Generator:
        """The sample's generator, seeded by ``(seed, epoch, sample_idx)``."""
        return sample_rng(results, self.seed, 'SynthesizeAnomaly')

    def _foreground(self, results: dict, img: np.ndarray) -> Optional[np.ndarray]:
        if self.foreground is None:
            return None
        if self.foreground == 'mask':
            if 'foreground_mask' not in results:
                raise KeyError("SynthesizeAnomaly(foreground='mask'): no 'foreground_mask' "
                               f"for {results.get('img_path')!r}")
            fg = np.asarray(results['foreground_mask']) != 0
            if fg.shape != img.shape[:2]:
                raise ValueError(f'SynthesizeAnomaly: foreground_mask {fg.shape} and image '
                                 f'{img.shape[:2]} of {results.get("img_path")!r} differ')
            return fg
        gray = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # (H, W)
        fg = gray > float(self.foreground['threshold'])
        return ~fg if self.foreground.get('invert', False) else fg

    def transform(self, results: dict) -> dict:
        img = np.asarray(results['img'])
        if img.ndim != 3 or img.dtype != np.uint8:
            raise ValueError(f'SynthesizeAnomaly expects an (H, W, C) uint8 image, got '
                             f'{img.dtype} {img.shape} for {results.get("img_path")!r}')
        rng = self.rng(results)
        out, mask, kind = img, np.zeros(img.shape[:2], bool), -1
        if rng.random() < self.prob:
            kind = int(rng.integers(len(self.kinds)))
            out, mask = self.kinds[kind](img, rng, self._foreground(results, img))
        if self.keep_clean:
            results['clean_img'] = img
        results['img'] = out
        results['gt_mask'] = mask.astype(np.uint8)
        drawn = kind >= 0 and bool(mask.any())
        results['gt_label'] = (kind + 1 if self.labels == 'kind' else 1) if drawn else 0
        results['anomaly_kind'] = type(self.kinds[kind]).__name__ if drawn else 'none'
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(kinds={self.kinds}, prob={self.prob}, '
                f'labels={self.labels!r}, foreground={self.foreground!r}, seed={self.seed})')
