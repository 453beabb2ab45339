"""Calibrate thresholds after training, then write them into the last checkpoint."""
import copy
import logging
import os
from typing import Optional

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu
from torch.utils.data import DataLoader

from anomaly_plugin.registry import DATASETS, HOOKS

from ..calibration import MODES, calibrate
from ..checkpoint import safe_load


def _module(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def write_checkpoint_status(path: str, status: str, model=None,
                            ckpt: Optional[dict] = None) -> None:
    """Record ``status`` as ``meta['calibration']`` of checkpoint ``path``
    (and, with ``model``, replace its weights by the model's current ones);
    the file is replaced atomically. ``ckpt``: its content when already
    loaded."""
    if ckpt is None:
        ckpt = safe_load(path, map_location='cpu')
    if model is not None:
        ckpt['state_dict'] = weights_to_cpu(get_state_dict(model))
    ckpt.setdefault('meta', {})['calibration'] = status
    tmp = f'{path}.calibrating'
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


#: calibration sets smaller than this are warned about (measured on a 50-image ballscrew
#: subset: 5 held-out images put 59 of 197 normal test images above the GANomaly threshold)
FEW_CALIBRATION_IMAGES = 20


@HOOKS.register_module()
class CalibrationHook(Hook):
    """Fit thresholds and normalisation on a calibration set after training.

    Training never loses its result to this step: the settings are checked
    and the calibration set is built before training starts (a setting that
    cannot work stops the run at once), and calibration runs in
    ``after_train``, once the checkpoint hook has saved the trained model.
    The calibrated state is then written into that last checkpoint (the
    file is replaced atomically). If calibration fails, the saved
    checkpoint stays as it was, uncalibrated, and the error names it. It
    does not depend on validation. Every rank computes the same values on
    the whole calibration set.

    With ``holdout_ratio=0`` (nothing held out) and the default
    ``dataset=dict(split='holdout')``, calibration is skipped with a
    warning: the checkpoint has no thresholds (decisions read 'n/a') until
    a calibration set is given.

    Every checkpoint says whether it is calibrated: ``meta['calibration']``
    is ``'calibrated'`` (with the values) in the updated last checkpoint,
    and otherwise ``'not calibrated: <why>'`` (an epoch's checkpoint saved
    before calibration, calibration skipped, or calibration failed: then the
    saved last checkpoint is rewritten with the reason, and the log says
    so); ``tools/infer.py`` and ``tools/test.py`` print it.

    Models that fit statistics of normal images after training
    (``fit_stage='after'``) are fitted first, by ``NormalFitHook`` (which
    runs before this hook), so the thresholds are fitted on the final maps.

    Args:
        dataset: config of the calibration dataset. With ``inherit=True``
            it is merged over the training dataset's config, with the test
            pipeline (``dict(split='holdout')``: the held-out normal training
            images); with ``inherit=False`` it is a full config (e.g. a
            labelled validation split).
        inherit: merge ``dataset`` over the runner's training dataset.
        batch_size: batch size of the calibration pass.
        **calib_kwargs: ``mode``, quantiles or manual thresholds, see
            :func:`anomaly_plugin.engine.calibration.compute_calibration`.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, dataset: Optional[dict] = None, inherit: bool = True,
                 batch_size: int = 8, num_workers: int = 0, **calib_kwargs):
        self.dataset_cfg = dataset
        self.inherit = inherit
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.calib_kwargs = calib_kwargs
        self._dataset = None
        self._skip: Optional[str] = None
        self._status = 'not calibrated: calibration runs after the last training step'

    @staticmethod
    def train_images_config(runner) -> dict:
        """The training dataset's config with the test pipeline."""
        cfg = copy.deepcopy(runner.cfg.train_dataloader.dataset)
        cfg['pipeline'] = copy.deepcopy(runner.cfg.test_dataloader.dataset.pipeline)
        return cfg

    def dataset_config(self, runner) -> dict:
        """The calibration dataset's full config."""
        if not self.inherit:
            return copy.deepcopy(self.dataset_cfg)
        cfg = self.train_images_config(runner)
        cfg.update(copy.deepcopy(self.dataset_cfg))
        return cfg

    def build_dataloader(self, runner, dataset_cfg: Optional[dict] = None) -> DataLoader:
        """Loader of ``dataset_cfg``, by default the calibration set."""
        if dataset_cfg is None:
            dataset = self._dataset
            if dataset is None:
                dataset = DATASETS.build(self.dataset_config(runner))
        else:
            dataset = DATASETS.build(dataset_cfg)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=pseudo_collate)

    # ------------------------------------------------------------ start-up
    def before_train(self, runner) -> None:
        """Check the settings and build the calibration set now, not after training."""
        self._dataset, self._skip = None, None
        kw = self.calib_kwargs
        mode = kw.get('mode', 'auto')
        if mode not in MODES:
            raise ValueError(f'CalibrationHook: mode must be one of {MODES}, got {mode!r}')
        if mode == 'manual':
            missing = [k for k in ('image_threshold', 'pixel_threshold') if kw.get(k) is None]
            if missing:
                raise ValueError(f"CalibrationHook: mode='manual' needs {missing}")
            return
        if self.dataset_cfg is None:
            self._skip = 'no calibration dataset is configured'
        else:
            cfg = self.dataset_config(runner)
            if cfg.get('split') == 'holdout' and not float(cfg.get('holdout_ratio', 0) or 0):
                self._skip = ('no normal training image is held out (holdout_ratio=0); '
                              'set holdout_ratio > 0 or give a labelled calibration '
                              "dataset (inherit=False, mode='f1')")
            else:
                self._dataset = DATASETS.build(cfg)
        if self._skip:
            self._status = f'not calibrated: {self._skip}'
            print_log(f'CalibrationHook: {self._skip}: thresholds will not be calibrated '
                      "and decisions read 'n/a'", logger='current', level=logging.WARNING)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record in the checkpoint whether (and why not) it is calibrated."""
        checkpoint.setdefault('meta', {})['calibration'] = self._status

    # -------------------------------------------------------------- the work
    def run(self, runner) -> None:
        """Fit the model's calibration (in memory)."""
        kw = self.calib_kwargs
        if kw.get('mode') == 'manual':
            _module(runner).postprocessor.set_calibration(dict(
                image_threshold=kw['image_threshold'],
                pixel_threshold=kw['pixel_threshold']))
            self._status = 'calibrated: manual thresholds'
            return
        if self._skip:
            return
        print_log('Calibrating thresholds and normalisation', logger='current')
        loader = self.build_dataloader(runner)
        if len(loader.dataset) < FEW_CALIBRATION_IMAGES:
            print_log(f'CalibrationHook: the thresholds come from {len(loader.dataset)} '
                      f'images only (fewer than {FEW_CALIBRATION_IMAGES}): a quantile of so few '
                      'scores is a noisy threshold, expect normal images marked NG; raise '
                      'holdout_ratio or give a labelled calibration set', logger='current',
                      level=logging.WARNING)
        values = calibrate(runner.model, loader, **self.calib_kwargs)
        text = ', '.join(f'{k}={v:.6g}' for k, v in values.items())
        self._status = f'calibrated: {text}'
        print_log(f'Calibration: {text}', logger='current')

    def update_checkpoint(self, runner, path: str) -> None:
        """Replace the model state of checkpoint ``path`` by the current one.

        Only a checkpoint of the final iteration is updated: an earlier one
        (e.g. ``save_last=False`` with an interval that skips the end) holds
        other weights, so the calibration then stays in the model only.
        """
        if not is_main_process():
            return
        ckpt = safe_load(path, map_location='cpu')
        saved_iter = ckpt.get('meta', {}).get('iter')
        if saved_iter != runner.iter and self._status.startswith('calibrated'):
            print_log(f'CalibrationHook: the last checkpoint {path} is from iteration '
                      f'{saved_iter}, not the final iteration {runner.iter}; it is left '
                      'as it is and the calibration is in the model only (save the last '
                      'checkpoint: save_last=True)', logger='current', level=logging.WARNING)
            return
        write_checkpoint_status(path, self._status, _module(runner)
                                if self._status.startswith('calibrated') else None, ckpt)
        if self._status.startswith('calibrated'):
            print_log(f'Calibration written to {path}', logger='current')

    def after_train(self, runner) -> None:
        path = runner.message_hub.get_info('last_ckpt')
        try:
            self.run(runner)
        except Exception as err:
            where = (f'the checkpoint {path} was saved before calibration and is kept '
                     'uncalibrated' if path else 'no checkpoint was saved')
            self._status = f'not calibrated: calibration failed: {" ".join(str(err).split())}'
            if path:
                self.update_checkpoint(runner, path)  # says why in its meta
            raise RuntimeError(f'CalibrationHook: calibration failed after training '
                               f'({where}): {err}') from err
        if not self._status.startswith('calibrated'):
            print_log(f'CalibrationHook: the model is {self._status}'
                      + (f'; so is the checkpoint {path}' if path else ''),
                      logger='current', level=logging.WARNING)
        if path:
            self.update_checkpoint(runner, path)
        else:
            print_log('CalibrationHook: no checkpoint was saved; the calibration is in '
                      'the model only', logger='current', level=logging.WARNING)
