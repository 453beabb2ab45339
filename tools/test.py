"""Test a checkpoint; writes ``<work_dir>/metrics.json`` and ``predictions.csv``."""
import argparse
import json
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from anomaly_plugin.apis import checkpoint_error_message
from anomaly_plugin.engine import check_data_files, load_tool_config, teardown_distributed
from anomaly_plugin.evaluation import METRIC_KEYS


def parse_args():
    parser = argparse.ArgumentParser(description='Test an anomaly detector')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for logs, metrics.json, panels')
    parser.add_argument('--data-root', help='category folder (MVTec layout) for '
                        'every split; same as --cfg-options data_root=DIR')
    parser.add_argument('--visualize', action='store_true',
                        help='write a heat-map panel per test image to '
                        '<work_dir>/vis (same as --cfg-options visualize=True)')
    parser.add_argument('--curves-dir', help='also write the image ROC curve '
                        '(image_curve.json) and the pixel ROC and PRO curves '
                        '(pixel_curve.json) there')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def format_table(metrics: dict) -> str:
    """Two-column text table of the metrics."""
    rows = [(k, f'{metrics[k]:.4f}') for k in METRIC_KEYS if k in metrics]
    width = max(len(k) for k, _ in rows) if rows else 6
    lines = [f"{'metric':<{width}}  value", '-' * (width + 8)]
    lines += [f'{k:<{width}}  {v}' for k, v in rows]
    return '\n'.join(lines)


def main():
    args = parse_args()
    import anomaly_plugin  # noqa: F401
    cfg = load_tool_config(args.config, args.cfg_options, args.data_root, args.launcher,
                           args.work_dir, visualize=True if args.visualize else None)
    cfg.load_from = None  # loaded strictly below: a checkpoint of another model is an error
    cfg.resume = False
    # per-image scores and decisions beside metrics.json
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    predictions = osp.join(cfg.work_dir, 'predictions.csv')
    if args.curves_dir:
        for ev in evaluators:
            name = getattr(ev.get('type'), '__name__', str(ev.get('type')))
            for kind in ('Image', 'Pixel'):
                if name.endswith(f'{kind}Metric'):
                    ev['curve_file'] = osp.join(args.curves_dir, f'{kind.lower()}_curve.json')
    cfg.test_evaluator = evaluators + [dict(type='anomaly_plugin.PredictionDump',
                                            out_file=predictions)]
    check_data_files(cfg, ['test_dataloader'])  # every bad file in one error, first
    runner = Runner.from_cfg(cfg)
    try:
        ckpt = runner.load_checkpoint(args.checkpoint, map_location='cpu', strict=True)
    except (RuntimeError, FileNotFoundError) as e:  # incl. UnsafeCheckpointError
        # an unsafe or missing file says so; only mismatched weights "do not fit"
        raise SystemExit(checkpoint_error_message(e, args.checkpoint, args.config)) from e
    calibration = (ckpt.get('meta') or {}).get('calibration', '')
    if calibration.startswith('not calibrated'):
        runner.logger.warning(f'{args.checkpoint} is {calibration}: the metrics do not depend '
                              "on it, the decisions in predictions.csv read 'n/a'")
    metrics = runner.test()
    if is_main_process():
        out = {k: float(metrics[k]) for k in METRIC_KEYS if k in metrics}
        path = osp.join(cfg.work_dir, 'metrics.json')
        with open(path, 'w') as f:
            json.dump(out, f, indent=2)
        print(format_table(out))
        print(f'metrics written to {path}, per-image predictions to {predictions}')
    teardown_distributed(runner)


if __name__ == '__main__':
    main()
