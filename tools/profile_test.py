"""Where a test (or an inference) run spends its time, stage by stage.

Runs what ``tools/test.py CONFIG CHECKPOINT`` runs (the config's test loop,
metrics and per-image predictions included) or, with ``--infer``, what
``tools/infer.py`` does on the test images (heat-maps and masks written), in
this process, ``--runs`` times, and prints per stage (decode, resize,
normalise, backbone, kNN / Mahalanobis, map upsample + blur, metrics,
outputs, other) its seconds, share and milliseconds per image (the median
run), beside the ceiling: the pretrained network alone on one preprocessed
batch. Stages are measured with the loader in this process
(``num_workers=0``); ``--workers N`` times the same run with N loader workers
(no breakdown: decoding then happens in the workers).

Run it on an otherwise idle machine:

    python tools/profile_test.py configs/patchcore/patchcore_mobilenetv2_mvtec.py \
        work_dirs/pc/epoch_1.pth --data-root DIR --threads 2 --runs 3 [--infer]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from anomaly_plugin.apis.profiling import (
    StageClock,
    backbone_ceiling,
    format_report,
    instrument_metrics,
    instrument_model,
    instrument_pipeline,
)


def parse_args():
    p = argparse.ArgumentParser(description='Per-stage profile of a test or inference run')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--data-root', help='category folder (MVTec layout)')
    p.add_argument('--infer', action='store_true',
                   help="profile tools/infer.py's path on the test images instead")
    p.add_argument('--batch-size', type=int, default=None,
                   help='images per forward pass (default: the config\'s test batch)')
    p.add_argument('--workers', type=int, default=None,
                   help='also time the run with this many loader workers (test only)')
    p.add_argument('--stage', nargs='+', default=[], metavar='NAME=PATH',
                   help='more stages: a callable of the model by its dotted path, e.g. '
                        'prior=prior.forward (VQVAEPrior\'s PixelCNN)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--out', help='write the result as JSON here')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


def option_text(value) -> str:
    """A parsed ``--cfg-options`` value written back as MMEngine's DictAction
    reads it (None, booleans, numbers, strings, lists and tuples of them)."""
    if isinstance(value, list):
        return '[' + ','.join(option_text(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ','.join(option_text(v) for v in value) + (',)' if len(value) == 1 else ')')
    return str(value)


def quiet_runner_cfg(args, work_dir, workers=0):
    from anomaly_plugin.engine import load_tool_config
    options = dict(args.cfg_options or {})
    options['test_dataloader.num_workers'] = workers
    options['test_dataloader.persistent_workers'] = False
    if args.batch_size:
        options['test_dataloader.batch_size'] = args.batch_size
    cfg = load_tool_config(args.config, options, args.data_root, 'none', work_dir)
    cfg.load_from = None
    cfg.resume = False
    cfg.default_hooks = dict(cfg.get('default_hooks', {}),
                             logger=dict(type='LoggerHook', interval=10 ** 9))
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    cfg.test_evaluator = evaluators + [dict(type='anomaly_plugin.PredictionDump',
                                            out_file=osp.join(work_dir, 'predictions.csv'))]
    return cfg


def instrument_extra(clock, model, specs):
    """``NAME=PATH`` stages: ``PATH`` is a dotted attribute path from the model."""
    for spec in specs:
        name, _, path = spec.partition('=')
        if not path:
            raise SystemExit(f'--stage {spec!r}: give NAME=PATH, e.g. prior=prior.forward')
        *parents, attr = path.split('.')
        obj = model
        for part in parents:
            obj = getattr(obj, part)
        clock.wrap(obj, attr, name)


def profile_test(args, work_dir, clock=None, workers=0):
    """One ``runner.test()``; returns (seconds, images, runner)."""
    cfg = quiet_runner_cfg(args, work_dir, workers)
    runner = Runner.from_cfg(cfg)
    runner.load_checkpoint(args.checkpoint, map_location='cpu', strict=True)
    loop = runner.test_loop  # built now, so its pipeline and metrics can be wrapped
    if clock is not None:
        instrument_pipeline(clock, loop.dataloader.dataset.pipeline)
        instrument_model(clock, runner.model)
        instrument_extra(clock, runner.model, args.stage)
        instrument_metrics(clock, loop.evaluator)
        clock.wrap(runner, 'call_hook', 'hooks (progress, logging)')
    start = time.perf_counter()
    runner.test()
    seconds = time.perf_counter() - start
    return seconds, len(loop.dataloader.dataset), runner


def profile_infer(args, work_dir, clock):
    """What tools/infer.py does on the test images; returns (seconds, images, model)."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    import infer as infer_tool  # tools/infer.py

    from anomaly_plugin.apis import results as results_module
    cfg = quiet_runner_cfg(args, work_dir)
    dataset = Runner.build_dataloader(cfg.test_dataloader).dataset
    images = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    lst = osp.join(work_dir, 'inputs')
    os.makedirs(lst, exist_ok=True)
    for i, path in enumerate(images):  # a folder of links: infer's input
        link = osp.join(lst, f'{i:05d}_{osp.basename(path)}')
        if not osp.lexists(link):
            os.symlink(osp.abspath(path), link)
    out = osp.join(work_dir, 'infer_out')
    argv = [args.config, args.checkpoint, lst, '--out', out,
            '--batch-size', str(args.batch_size or cfg.test_dataloader.batch_size)]
    if args.cfg_options:
        argv += ['--cfg-options'] + [f'{k}={option_text(v)}' for k, v in args.cfg_options.items()]
    built = {}
    original = infer_tool.AnomalyInferencer

    def build(*a, **k):
        inferencer = original(*a, **k)
        instrument_pipeline(clock, inferencer.pipeline.files)
        instrument_model(clock, inferencer.model)
        instrument_extra(clock, inferencer.model, args.stage)
        built['model'] = inferencer.model
        return inferencer

    infer_tool.AnomalyInferencer = build
    clock.wrap(results_module, 'write_outputs', 'outputs (heat-map, mask PNG)')
    clock.wrap(results_module.ResultsWriter, 'write', 'results.csv')
    try:
        start = time.perf_counter()
        infer_tool.main(argv)
        seconds = time.perf_counter() - start
    finally:
        infer_tool.AnomalyInferencer = original
    return seconds, len(images), built['model']


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    import anomaly_plugin  # noqa: F401
    MMLogger.get_instance('mmengine', log_level='WARNING')
    runs, model = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            clock = StageClock()
            work_dir = osp.join(tmp, f'run{i}')
            os.makedirs(work_dir)
            try:
                if args.infer:
                    seconds, images, model = profile_infer(args, work_dir, clock)
                else:
                    seconds, images, runner = profile_test(args, work_dir, clock)
                    model = runner.model
            finally:
                clock.restore()
            runs.append(dict(seconds=seconds, images=images,
                             stages=clock.report(seconds, images)))
            print(f'run {i}: {images} images in {seconds:.2f} s', flush=True)
        median = sorted(runs, key=lambda r: r['seconds'])[len(runs) // 2]
        result = dict(config=args.config, mode='infer' if args.infer else 'test',
                      threads=args.threads, runs=[r['seconds'] for r in runs],
                      images=median['images'], seconds=median['seconds'],
                      images_per_s=median['images'] / median['seconds'],
                      stages=median['stages'])
        if args.workers is not None and not args.infer:
            times = []
            for i in range(args.runs):
                work_dir = osp.join(tmp, f'workers{i}')
                os.makedirs(work_dir)
                times.append(profile_test(args, work_dir, workers=args.workers)[0])
            result['workers'] = args.workers
            result['workers_images_per_s'] = median['images'] / statistics.median(times)
        cfg = quiet_runner_cfg(args, tmp)
        loader = Runner.build_dataloader(cfg.test_dataloader)
        batch = model.data_preprocessor(next(iter(loader)), False)['inputs']
        if hasattr(getattr(model, 'backbone', None), '_run_backbone'):
            result['ceiling_images_per_s'] = backbone_ceiling(model, batch)
            result['ceiling_batch'] = int(batch.shape[0])
    print(format_report(median['stages'], median['seconds'], median['images']))
    if 'ceiling_batch' in result:
        print(f"backbone alone on a batch of {result['ceiling_batch']}: "
              f"{result['ceiling_images_per_s']:.1f} images/s")
    if 'workers_images_per_s' in result:
        print(f"with {args.workers} loader worker(s): {result['workers_images_per_s']:.1f} "
              'images/s')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
