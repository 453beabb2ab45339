"""Base of detectors with several parts, each stepped by its own optimizer
(GANs, two-stage models such as the VQ-VAE and its prior).

MMEngine's GAN recipe: the config's ``optim_wrapper`` uses
``MultiOptimWrapperConstructor`` with one optimizer per submodule
(``generator=dict(...)``, ``discriminator=dict(...)``, ...), the runner
builds an ``OptimWrapperDict``, and :meth:`train_step` updates each part
with its own wrapper. Checkpoints hold every optimizer's state, so
``--resume`` restores all of them; ``--amp`` switches every wrapper.
"""
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapperDict

from ..utils import frozen
from .base import BaseAnomalyDetector


class MultiPartDetector(BaseAnomalyDetector):
    """Detector whose ``train_step`` updates several parts in turn.

    Subclasses set :attr:`optimized` (the submodule names that have an
    optimizer of the same key) and implement :meth:`train_parts`, which
    calls :meth:`update` once per part to step.
    """

    #: names of the submodules with an optimizer each, as in the config
    optimized: Sequence[str] = ('generator', 'discriminator')

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._own_iter = 0  # iteration count when no runner reports one

    # -- progress ---------------------------------------------------------
    def train_progress(self) -> Tuple[int, int, int]:
        """(iteration, epoch, max_epochs) of the running training loop.

        Read from MMEngine's message hub (kept up to date by the runner's
        ``RuntimeInfoHook``, also after ``--resume``); outside a runner the
        model's own step count and epoch 0 (max_epochs 0).
        """
        hub = MessageHub.get_current_instance()
        if hub.get_info('loop_stage') == 'train' and hub.get_info('iter') is not None:
            return (int(hub.get_info('iter')), int(hub.get_info('epoch') or 0),
                    int(hub.get_info('max_epochs') or 0))
        return self._own_iter, 0, 0

    def scaled_epochs(self, epochs: int) -> int:
        """A stage length in epochs as the running loop counts them: times the
        ``epoch_scale`` a :class:`~anomaly_plugin.engine.MinItersEpochBasedTrainLoop`
        publishes when it runs more epochs than ``max_epochs`` on a small set
        (1 otherwise), so the stage keeps its share of the training."""
        scale = MessageHub.get_current_instance().get_info('epoch_scale') or 1.0
        return max(1, round(int(epochs) * float(scale)))

    # -- stepping ---------------------------------------------------------
    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        """Preprocess the batch, then :meth:`train_parts`; returns the log vars."""
        if not isinstance(optim_wrapper, OptimWrapperDict):
            names = ', '.join(f'{n}=dict(type=OptimWrapper, optimizer=...)'
                              for n in self.optimized)
            raise TypeError(
                f'{type(self).__name__} trains {len(self.optimized)} parts with an optimizer '
                f"each: the config's optim_wrapper must be dict(constructor="
                f"'MultiOptimWrapperConstructor', {names}); got {type(optim_wrapper).__name__}")
        missing = [n for n in self.optimized if n not in optim_wrapper]
        if missing:
            raise KeyError(f'{type(self).__name__}: optim_wrapper has no optimizer for '
                           f'{missing} (keys: {list(optim_wrapper.keys())})')
        data = self.data_preprocessor(data, True)
        inputs = data['inputs']  # (B, C, H, W) normalised
        self.note_input_size(inputs)
        log_vars = self.train_parts(self.data_preprocessor.denormalize(inputs), optim_wrapper)
        self._own_iter += 1
        return log_vars

    def update(self, optim_wrapper: OptimWrapperDict, name: str,
               compute: Callable[[], Dict[str, torch.Tensor]],
               freeze: Iterable[str] = ()) -> Dict[str, torch.Tensor]:
        """One optimizer step of part ``name`` on the losses ``compute()`` gives.

        Args:
            optim_wrapper: the runner's wrappers.
            name: the part (and wrapper key) to step.
            compute: returns the loss dict (terms containing ``'loss'`` are
                summed, each is logged).
            freeze: other parts whose parameters get no gradient meanwhile.

        Returns:
            The logged values of the losses.
        """
        wrapper = optim_wrapper[name]
        with frozen(*(getattr(self, n) for n in freeze)), \
                wrapper.optim_context(getattr(self, name)):
            losses = compute()
        parsed, log_vars = self.parse_losses(losses)
        wrapper.update_params(parsed)
        # the part's total under its own name (parts would collide on 'loss')
        log_vars[f'loss_{name}'] = log_vars.pop('loss')
        return log_vars

    def adversarial_update(self, optim_wrapper: OptimWrapperDict, generate: Callable[[], Any],
                           loss_discriminator: Callable[[Any], Dict[str, torch.Tensor]],
                           loss_generator: Callable[[Any], Dict[str, torch.Tensor]],
                           after_discriminator: Optional[Callable[[Dict], None]] = None
                           ) -> Dict[str, torch.Tensor]:
        """One adversarial step from one generator pass (DCGAN's recipe).

        ``generate()`` runs once, in the generator's optimizer context (AMP);
        its output, which the discriminator's loss detaches, steps the
        discriminator, then, through the updated discriminator (its
        parameters frozen), the generator. BatchNorm statistics of the
        generator move once a step.

        Args:
            optim_wrapper: the runner's wrappers (``generator``, ``discriminator``).
            generate: the generator pass; returns what both losses take.
            loss_discriminator, loss_generator: loss dicts from that output.
            after_discriminator: called with the discriminator's logged
                losses before the generator's step (e.g. to re-initialise it).

        Returns:
            Both parts' logged losses.
        """
        with optim_wrapper['generator'].optim_context(self.generator):
            out = generate()
        log_d = self.update(optim_wrapper, 'discriminator', lambda: loss_discriminator(out))
        if after_discriminator is not None:
            after_discriminator(log_d)
        log_g = self.update(optim_wrapper, 'generator', lambda: loss_generator(out),
                            freeze=('discriminator',))
        return {**log_d, **log_g}

    def train_parts(self, images: torch.Tensor, optim_wrapper: OptimWrapperDict
                    ) -> Dict[str, torch.Tensor]:
        """Step the parts on a batch of images (B, C, H, W) in [0, 1]."""
        raise NotImplementedError

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        """Every part's loss terms on a batch, without stepping (``mode='loss'``)."""
        images = self.data_preprocessor.denormalize(inputs)
        losses = {}
        for compute in self.loss_terms(images):
            losses.update(compute())
        return losses

    def loss_terms(self, images: torch.Tensor) -> Iterable[Callable[[], Dict]]:
        """The loss computations :meth:`loss` reports, one callable per part."""
        raise NotImplementedError
