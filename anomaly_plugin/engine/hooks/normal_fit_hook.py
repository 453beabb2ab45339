"""Fit statistics of normal images after gradient training."""
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from torch.utils.data import DataLoader

from anomaly_plugin.registry import DATASETS, HOOKS

from ..fitting import fit_normal, fit_stage_of
from .calibration_hook import CalibrationHook, _module, write_checkpoint_status


@HOOKS.register_module()
class NormalFitHook(Hook):
    """After training, fit models with ``fit_stage='after'`` on the training images.

    The pass (:func:`~anomaly_plugin.engine.fit_normal`) reads the training
    images with the test pipeline, so the statistics describe the maps the
    model will be tested with (MSCDAE's level statistics, the VQ-VAE's
    resampling threshold, the feature-editing centres). It runs after the
    checkpoint hook has saved the trained model and before
    :class:`CalibrationHook`, which then writes the fitted model into the
    last checkpoint. If the fit fails, the saved checkpoint is kept as
    trained, its ``meta['calibration']`` says why it is not calibrated, and
    the error names it. Validation during training fits first (once per
    validation; the fit for the validation that ends training is not
    repeated after it). Models with another ``fit_stage`` are left alone.

    Args:
        batch_size: batch size of the pass.
    """

    priority = 'HIGH'  # before CalibrationHook (ABOVE_NORMAL)

    def __init__(self, batch_size: int = 8):
        self.batch_size = batch_size

    def before_train(self, runner) -> None:
        self._training, self._fitted_at = True, None

    def before_val(self, runner) -> None:
        """Validation during training scores with statistics of the model as it
        is now (a model fitted after training has none yet)."""
        if getattr(self, '_training', False) and fit_stage_of(_module(runner)) == 'after':
            self._fit(runner)
            self._fitted_at = runner.iter

    def after_train(self, runner) -> None:
        self._training = False
        if fit_stage_of(_module(runner)) != 'after':
            return
        if getattr(self, '_fitted_at', None) == runner.iter:
            return  # fitted for the validation that ended training: nothing changed since
        self._fit(runner)

    def _fit(self, runner) -> None:
        model = _module(runner)
        dataset = DATASETS.build(CalibrationHook.train_images_config(runner))
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                            collate_fn=pseudo_collate)
        try:
            fit_normal(model, loader)  # logs the statistics
        except Exception as err:
            path = runner.message_hub.get_info('last_ckpt')
            reason = " ".join(str(err).split())
            if path:
                write_checkpoint_status(
                    path, f'not calibrated: fitting the normal-image statistics failed: {reason}')
            raise RuntimeError(f'NormalFitHook: fitting {type(model).__name__} on the training '
                               'images failed after training ('
                               + (f'the checkpoint {path} is kept as trained' if path else
                                  'no checkpoint was saved') + f'): {err}') from err
