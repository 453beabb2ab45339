"""Calibrate thresholds at the end of training, before the last checkpoint."""
import copy
from typing import Optional

from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from anomaly_plugin.registry import DATASETS, HOOKS

from ..calibration import calibrate


@HOOKS.register_module()
class CalibrationHook(Hook):
    """Fit thresholds and normalisation on a calibration set after training.

    Runs once, after the last training iteration and before the checkpoint
    hook saves (higher priority), so the saved checkpoint holds the
    calibration. It does not depend on validation. Every rank computes the
    same values on the whole calibration set.

    Models with a ``fit_normal_statistics(dataloader)`` method (statistics
    of their raw maps on normal images, e.g. the per-level residual
    statistics of ``MultiScalePyramidAE``) get it called first, on the
    training images with the test pipeline, so the thresholds are fitted
    on the final maps.

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
        dataset = DATASETS.build(dataset_cfg or self.dataset_config(runner))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=pseudo_collate)

    def fit_statistics(self, runner) -> None:
        """Call the model's ``fit_normal_statistics`` on the training images."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not callable(getattr(model, 'fit_normal_statistics', None)):
            return
        loader = self.build_dataloader(runner, self.train_images_config(runner))
        stats = model.fit_normal_statistics(loader)
        if stats:
            print_log('Normal-image statistics: ' + ', '.join(
                f'{k}={[round(v, 6) for v in vals]}' for k, vals in stats.items()),
                logger='current')

    def run(self, runner) -> None:
        self.fit_statistics(runner)
        if self.dataset_cfg is None:
            kw = self.calib_kwargs
            if kw.get('mode') != 'manual':
                print_log('CalibrationHook: no calibration dataset, skipped',
                          logger='current')
                return
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            model.postprocessor.set_calibration(dict(
                image_threshold=kw['image_threshold'],
                pixel_threshold=kw['pixel_threshold']))
            return
        print_log('Calibrating thresholds and normalisation', logger='current')
        values = calibrate(runner.model, self.build_dataloader(runner), **self.calib_kwargs)
        print_log('Calibration: ' + ', '.join(f'{k}={v:.6g}' for k, v in values.items()),
                  logger='current')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.is_last_train_iter(runner):
            self.run(runner)
