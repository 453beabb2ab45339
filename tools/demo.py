"""The demo: build the texture set once, train and test on each category.

Prints the metrics table and writes heat-map panels to
``work_dirs/demo/<category>/vis``.
"""
import argparse
import json
import os.path as osp
import time

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

# next to tools/: the repository's configs/, or an installed package's .mim/configs/
DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
                          'patchcore', 'patchcore_mobilenetv2_mvtec.py')


def parse_args():
    parser = argparse.ArgumentParser(description='Run the demo')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--data-dir', default='data/demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--categories', nargs='+',
                        default=['brick', 'grass', 'gravel'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys for every category')
    return parser.parse_args()


def main():
    args = parse_args()
    import anomaly_plugin  # noqa: F401
    from anomaly_plugin.demo import build_demo_dataset
    from anomaly_plugin.engine import disable_validation, merge_options
    from anomaly_plugin.evaluation import METRIC_KEYS

    build_demo_dataset(args.data_dir, categories=tuple(args.categories), seed=args.seed)
    table = {}
    for cat in args.categories:
        cfg = Config.fromfile(args.config)
        merge_options(cfg, {**(args.cfg_options or {}),
                            'data_root': osp.join(args.data_dir, cat), 'visualize': True})
        disable_validation(cfg)  # the test below evaluates once
        cfg.work_dir = osp.join(args.work_dir, cat)
        cfg.experiment_name = f'demo_{cat}_{int(time.time())}'
        cfg.randomness = dict(seed=args.seed)
        start = time.perf_counter()
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
        seconds = time.perf_counter() - start
        table[cat] = {k: float(metrics[k]) for k in METRIC_KEYS if k in metrics}
        table[cat]['seconds'] = seconds
        with open(osp.join(cfg.work_dir, 'metrics.json'), 'w') as f:
            json.dump(table[cat], f, indent=2)
    keys = [k for k in METRIC_KEYS if all(k in row for row in table.values())]
    print('\nDemo results (' + osp.basename(args.config) + ')')
    print(f"{'category':<10}" + ''.join(f'{k:>13}' for k in keys) + f"{'train+test s':>14}")
    for cat, row in table.items():
        print(f'{cat:<10}' + ''.join(f'{row[k]:>13.4f}' for k in keys)
              + f"{row['seconds']:>14.1f}")
    print(f'\nHeat-map panels: {args.work_dir}/<category>/vis/')


if __name__ == '__main__':
    main()
