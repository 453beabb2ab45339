"""Train (or fit) an anomaly detector from a config."""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from anomaly_plugin.engine import (
    check_data_files,
    disable_validation,
    enable_amp,
    load_tool_config,
    teardown_distributed,
    weights_download_message,
)


def parse_args():
    parser = argparse.ArgumentParser(description='Train an anomaly detector')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--data-root', help='category folder (MVTec layout) for '
                        'every split; same as --cfg-options data_root=DIR')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the '
                        'latest one in the work dir when no path is given')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bfloat16 autocast on CPU)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. data_root=DIR '
                        'img_size=256 model.coreset_ratio=0.01')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args) -> Config:
    import anomaly_plugin  # noqa: F401  (registers the modules)
    cfg = load_tool_config(args.config, args.cfg_options, args.data_root, args.launcher,
                           args.work_dir)
    if args.amp:
        print(enable_amp(cfg))
    if args.no_validate:
        disable_validation(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main():
    args = parse_args()
    cfg = build_config(args)
    check_data_files(cfg)  # every bad file of every split in one error, before training
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except OSError as err:  # e.g. pretrained weights that cannot be downloaded
        message = weights_download_message(err, cfg, args.config)
        if message is None:
            raise
        raise SystemExit(f'train.py: {message}') from err
    teardown_distributed(runner)


if __name__ == '__main__':
    main()
