"""Reports the training files that failed when decoded in the first pass."""
from mmengine import dist
from mmengine.hooks import Hook

from anomaly_plugin.datasets.base import bad_files_of
from anomaly_plugin.datasets.file_check import report_dataset_bad_files
from anomaly_plugin.registry import HOOKS


@HOOKS.register_module()
class BadFileHook(Hook):
    """Collect the ``bad_files`` that training samples carry; report them all
    at the end of the first pass over the training data.

    A training file that passed the dataset's cheap checks but fails when
    decoded in full is replaced by the next sample that loads, which carries
    the file and its reason (see
    :class:`~anomaly_plugin.datasets.BaseAnomalyDataset`). After
    ``len(train_dataloader)`` iterations (one epoch; counted from the start or
    the resumed point) this hook gathers them from every rank and raises one
    :class:`~anomaly_plugin.datasets.file_check.BadFilesError` listing them,
    or, when the dataset has ``skip_bad_files=True``, logs one warning.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._bad, self._iters, self._done = [], 0, False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self._done:
            return
        if isinstance(data_batch, dict):
            self._bad += bad_files_of(data_batch.get('data_samples') or ())
        self._iters += 1
        if self._iters >= len(runner.train_dataloader):
            self._done = True
            self.report(runner)

    def report(self, runner) -> None:
        """Raise (or warn) about the bad files of every rank."""
        bad = [b for part in dist.all_gather_object(self._bad) for b in part]
        report_dataset_bad_files(bad, runner.train_dataloader.dataset,
                                 'decoding the first pass over the data', 'the training data')
