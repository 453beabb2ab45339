"""Which method works on my parts? Train and test several shipped configs on a
category (or every category under a root) and write one table.

    python tools/survey.py DATA_ROOT [--methods padim_mobilenetv2 draem ... |
        --families 'feature level' ... | --all] [--work-dir work_dirs/survey]
        [--cfg-options img_size=256 ...] [--budget-s 600]

Runs one method after the other (each trains with tools/train.py and tests with
tools/test.py); a survey started again skips the finished methods. Writes
survey.csv, survey.json and survey.md in the work dir.
"""
import argparse
import sys

from mmengine.config import DictAction

from anomaly_plugin.apis.survey import DEFAULT_METHODS, run_survey


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('data_root', help='category folder (MVTec layout) or a root of them')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--methods', nargs='+', help='method names (config names without '
                       '_mvtec.py) or config files; default: ' + ' '.join(DEFAULT_METHODS))
    group.add_argument('--families', nargs='+', help='every method of these families')
    group.add_argument('--all', action='store_true', help='every shipped config')
    parser.add_argument('--work-dir', default='work_dirs/survey')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='options applied to every method, e.g. img_size=256')
    parser.add_argument('--budget-s', type=float, help='training seconds per method: the '
                        'training ends after the epoch at which one more would pass it')
    parser.add_argument('--nproc', type=int, default=1, help='processes per method: each '
                        'trains and tests distributed (torch.distributed.run, MMEngine launcher)')
    parser.add_argument('--no-retry', action='store_true',
                        help='keep the failures of an earlier survey instead of retrying')
    parser.add_argument('--quiet', action='store_true', help="hide each method's output")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    options = [f'{k}={v}' for k, v in args.cfg_options.items()]
    try:
        rows = run_survey(args.data_root, args.methods, args.families, args.all,
                          args.work_dir, options, retry_failed=not args.no_retry,
                          verbose=not args.quiet)
    except (ValueError, FileNotFoundError) as err:
        print(f'survey: {err}', file=sys.stderr)
        return 2
    with open(f'{args.work_dir}/survey.md', encoding='utf-8') as f:
        print(f.read())
    return 0 if all(r['status'] == 'ok' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
