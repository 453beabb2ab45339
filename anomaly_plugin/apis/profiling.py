"""Where the time of a test or an inference run goes, stage by stage.

:class:`StageClock` wraps methods of the objects a run uses (the pipeline's
transforms, the model's parts, the metrics, the output writers) and charges
the wall-clock time spent inside each to a named stage. Stages nest (the
backbone runs inside the model's forward): each stage gets its *own* time,
without the time of the stages called from it, so the stages add up to the
time spent in any of them; :meth:`StageClock.report` puts the rest of the
run's wall time under ``other``.

Pipeline stages are only seen in this process: profile with
``num_workers=0`` to see decoding (``tools/profile_test.py`` does).
"""
import functools
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

import torch

#: stage names of the pipeline's transforms, by class name
TRANSFORM_STAGES = {
    'LoadAnomalyImage': 'decode image',
    'LoadAnomalyMask': 'decode mask',
    'Resize': 'resize',
    'PackAnomalyInputs': 'pack (to tensor)',
}


class StageClock:
    """Own wall-clock time per stage of the wrapped calls.

    Example::

        clock = StageClock()
        clock.wrap(model.backbone, '_run_backbone', 'backbone')
        run()
        clock.restore()
        rows = clock.report(total_s)
    """

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._stack: List[str] = []
        self._last = 0.0
        self._undo: List[Tuple[object, str, object, bool]] = []

    def _switch(self) -> None:
        now = time.perf_counter()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._last
        self._last = now

    def enter(self, stage: str) -> None:
        """Start charging ``stage`` (the running stage is paused)."""
        self._switch()
        self._stack.append(stage)
        self.calls[stage] += 1

    def exit(self) -> None:
        """Stop charging the innermost stage (its caller's resumes)."""
        self._switch()
        self._stack.pop()

    def wrap(self, obj: object, attr: str, stage: str) -> None:
        """Charge the calls of ``obj.attr`` to ``stage`` until :meth:`restore`.

        Args:
            obj: an instance, class or module.
            attr: the name of a callable attribute of it.
            stage: the stage's name in the report.
        """
        had_own = attr in vars(obj) if hasattr(obj, '__dict__') else False
        fn = getattr(obj, attr)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.enter(stage)
            try:
                return fn(*args, **kwargs)
            finally:
                self.exit()

        self._undo.append((obj, attr, vars(obj).get(attr) if had_own else None, had_own))
        setattr(obj, attr, timed)

    def restore(self) -> None:
        """Undo every :meth:`wrap`, last first."""
        for obj, attr, before, had_own in reversed(self._undo):
            if had_own:
                setattr(obj, attr, before)
            else:
                delattr(obj, attr)
        self._undo = []

    def report(self, total_s: float, images: int) -> List[dict]:
        """Rows ``{stage, seconds, share, ms_per_image, calls}``, largest first,
        with ``other`` = ``total_s`` minus the stages' sum."""
        rows = [dict(stage=s, seconds=v, calls=self.calls[s]) for s, v in self.seconds.items()]
        rows.append(dict(stage='other', seconds=max(0.0, total_s - sum(self.seconds.values())),
                         calls=0))
        for r in rows:
            r['share'] = r['seconds'] / total_s if total_s else 0.0
            r['ms_per_image'] = 1000.0 * r['seconds'] / max(1, images)
        return sorted(rows, key=lambda r: -r['seconds'])


def instrument_pipeline(clock: StageClock, compose) -> None:
    """Charge each transform of an MMEngine ``Compose`` to its stage
    (:data:`TRANSFORM_STAGES`, else ``pipeline: <class>``)."""
    for t in getattr(compose, 'transforms', []):
        name = type(t).__name__
        attr = 'transform' if hasattr(t, 'transform') else '__call__'
        clock.wrap(t, attr, TRANSFORM_STAGES.get(name, f'pipeline: {name}'))


def instrument_model(clock: StageClock, model: torch.nn.Module) -> None:
    """Charge a detector's parts to stages: ``normalise`` (data
    preprocessor), ``backbone`` (the pretrained network), ``feature
    aggregation`` (pooling, resizing, concatenation), ``kNN search`` /
    ``kNN image score`` (memory banks), ``Mahalanobis`` (PaDiM),
    ``map upsample + blur`` (post-processor), ``predictions`` (the rest of
    ``predict``: thresholds, normalisation, samples)."""
    clock.wrap(model.data_preprocessor, 'forward', 'normalise')
    clock.wrap(model, 'predict', 'predictions')
    clock.wrap(model.postprocessor, 'forward', 'map upsample + blur')
    extractor = getattr(model, 'backbone', None)
    if extractor is not None and hasattr(extractor, '_run_backbone'):
        clock.wrap(extractor, 'forward', 'feature aggregation')
        clock.wrap(extractor, '_run_backbone', 'backbone')
    bank = getattr(model, 'memory_bank', None)
    if bank is not None:
        clock.wrap(bank, 'query', 'kNN search')
        if hasattr(bank, 'reweighted_scores'):
            clock.wrap(bank, 'reweighted_scores', 'kNN image score')
    gaussian = getattr(model, 'gaussian', None)
    if gaussian is not None and hasattr(gaussian, 'mahalanobis'):
        clock.wrap(gaussian, 'mahalanobis', 'Mahalanobis')


def instrument_metrics(clock: StageClock, evaluator) -> None:
    """Charge each metric's ``process`` (per batch) and ``compute_metrics``
    (at the end) to ``metric <class> process`` / ``... compute``."""
    for metric in getattr(evaluator, 'metrics', []):
        name = type(metric).__name__
        clock.wrap(metric, 'process', f'metric {name} process')
        clock.wrap(metric, 'compute_metrics', f'metric {name} compute')


def backbone_ceiling(model: torch.nn.Module, inputs: torch.Tensor, repeats: int = 5
                     ) -> float:
    """Images/s of the pretrained network alone on one preprocessed batch
    (the median of ``repeats`` passes after a warm-up): the rate no test of
    the model can beat.

    Args:
        model: a detector with a :class:`FeatureExtractor` ``backbone``.
        inputs: (B, 3, H, W) normalised images.
    """
    run: Optional[Callable] = getattr(getattr(model, 'backbone', None), '_run_backbone', None)
    if run is None:
        raise ValueError(f'{type(model).__name__} has no FeatureExtractor backbone')
    times = []
    with torch.no_grad():
        run(inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            run(inputs)
            times.append(time.perf_counter() - start)
    times.sort()
    return inputs.shape[0] / times[len(times) // 2]


def format_report(rows: List[dict], total_s: float, images: int) -> str:
    """The report as a Markdown table (stage, s, %, ms per image)."""
    lines = [f'{images} images in {total_s:.2f} s ({images / total_s:.1f} images/s)', '',
             '| stage | s | % | ms / image |', '| --- | --- | --- | --- |']
    lines += [f"| {r['stage']} | {r['seconds']:.2f} | {100 * r['share']:.1f} | "
              f"{r['ms_per_image']:.2f} |" for r in rows]
    return '\n'.join(lines)


def benchmark_config(config: str, data_root: str, cfg_options: Optional[dict] = None):
    """A config for an in-process benchmark: ``cfg_options`` merged, the data
    root set, the plugin's default scope initialised.

    Returns:
        The ``mmengine.Config``.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from anomaly_plugin.engine import merge_options
    cfg = Config.fromfile(config)
    merge_options(cfg, {**(cfg_options or {}), 'data_root': data_root})
    init_default_scope('anomaly_plugin')
    return cfg


def build_eval_model(cfg) -> torch.nn.Module:
    """``cfg.model`` built, its weights initialised (the pretrained-weight
    loader's per-parameter listing kept out of the log) and in eval mode."""
    from mmengine.logging import MMLogger

    from anomaly_plugin.registry import MODELS
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model.eval()
