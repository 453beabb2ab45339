"""The survey: train and test several shipped configs on one data set, one table.

Each method runs ``tools/train.py`` and ``tools/test.py`` as child processes (one
method's crash cannot take the survey down, and each shows its own progress);
its results land in ``<work_dir>/<category>/<method>/result.json``. A survey
started again skips the methods whose result says ``ok`` and resumes a method
whose training stopped part-way from its last checkpoint; a method that failed
is tried again (``retry_failed=False`` keeps its failure). The table rows are
written as ``survey.csv``, ``survey.json`` and ``survey.md`` in ``work_dir``.
"""
import csv
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from collections import deque
from typing import Dict, List, Optional, Sequence

from anomaly_plugin.evaluation import METRIC_KEYS

#: configs folder name -> family
FAMILIES = {
    'ae': 'reconstruction', 'riad': 'reconstruction', 'latent': 'latent',
    'generative': 'generative', 'patchcore': 'feature embedding',
    'padim': 'feature embedding', 'tiling': 'tiling', 'stfpm': 'feature level',
    'reverse_distillation': 'feature level', 'fastflow': 'feature level',
    'cflow': 'feature level', 'patch_svdd': 'feature level', 'dfm': 'feature level',
    'draem': 'synthetic anomalies', 'cutpaste': 'synthetic anomalies',
    'simplenet': 'synthetic anomalies',
}
#: one representative per family that trains in minutes on a CPU
DEFAULT_METHODS = ('padim_mobilenetv2', 'ssim_ae', 'feature_editing_ae', 'ganomaly',
                   'stfpm_mobilenetv2', 'draem')
#: the columns of survey.csv, in order
COLUMNS = ('category', 'method', 'family', 'status', *METRIC_KEYS, 'train_s',
           'test_images_per_s', 'peak_rss_mb', 'parameters', 'image_threshold',
           'ng_rate_normal', 'schedule', 'config', 'error')

# runs a tool in this interpreter and records the process's peak memory at exit (each
# rank of a distributed run in its own file)
_RUNNER = ('import json, os, resource, runpy, sys\n'
           'out, tool = sys.argv[1], sys.argv[2]\n'
           'rank = os.environ.get("RANK", "0")\n'
           'out = out if rank == "0" else f"{out}.rank{rank}"\n'
           'sys.argv = sys.argv[2:]\n'
           'try:\n'
           '    runpy.run_path(tool, run_name="__main__")\n'
           'finally:\n'
           '    with open(out, "w") as f:\n'
           '        json.dump({"peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF)'
           '.ru_maxrss}, f)\n')


def tools_root() -> str:
    """The folder holding ``configs/`` and ``tools/``: the repository, or an
    installed package's ``.mim``."""
    pkg = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for root in (osp.dirname(pkg), osp.join(pkg, '.mim')):
        if osp.isfile(osp.join(root, 'tools', 'train.py')) and osp.isdir(
                osp.join(root, 'configs')):
            return root
    raise FileNotFoundError(f'no configs/ and tools/ beside or inside {pkg}')


def shipped_methods() -> Dict[str, dict]:
    """Every shipped ``configs/<family>/<name>_mvtec.py``: method name -> family, config."""
    root = tools_root()
    out = {}
    for path in sorted(glob.glob(osp.join(root, 'configs', '*', '*_mvtec.py'))):
        folder = osp.basename(osp.dirname(path))
        if folder not in FAMILIES:
            continue
        name = osp.basename(path)[:-len('_mvtec.py')]
        out[name] = dict(family=FAMILIES[folder], config=path)
    return out


def select_methods(methods: Optional[Sequence[str]] = None,
                   families: Optional[Sequence[str]] = None,
                   run_all: bool = False) -> List[str]:
    """Method names from names, families or all; the default set otherwise.

    Raises:
        ValueError: an unknown method or family (the message lists the known ones).
    """
    known = shipped_methods()
    if run_all:
        return list(known)
    if methods:
        unknown = [m for m in methods if m not in known and not _is_config_file(m)]
        if unknown:
            raise ValueError(f'unknown method(s) {unknown}; shipped: {sorted(known)}')
        return list(methods)
    if families:
        names = sorted(set(FAMILIES.values()))
        unknown = [f for f in families if f not in names]
        if unknown:
            raise ValueError(f'unknown famil(y/ies) {unknown}; known: {names}')
        return [m for m, v in known.items() if v['family'] in families]
    return [m for m in DEFAULT_METHODS if m in known]


def _is_config_file(method: str) -> bool:
    return method.endswith('.py') and osp.isfile(method)


def method_info(method: str) -> dict:
    """Family and config of a shipped method, or of a config file of your own
    (family ``'custom'``, named after the file)."""
    if _is_config_file(method):
        name = osp.basename(method)[:-3]
        return dict(name=name, family='custom', config=osp.abspath(method))
    return dict(name=method, **shipped_methods()[method])


#: the split file that marks a VisA root
VISA_CSV = osp.join('split_csv', '1cls.csv')


def categories(data_root: str) -> Dict[str, dict]:
    """The categories to survey, ``{name: dict(root=..., options=[...])}``.

    A folder holding ``train/`` is one category (MVTec layout); a VisA root
    (``split_csv/1cls.csv``) gives every ``object`` of the CSV, read with
    :class:`VisADataset` (the options set the datasets' type and category);
    any other folder gives each sub-folder holding ``train/``.
    """
    if osp.isdir(osp.join(data_root, 'train')):
        return {osp.basename(osp.normpath(data_root)): dict(root=data_root, options=[])}
    if osp.isfile(osp.join(data_root, VISA_CSV)):
        with open(osp.join(data_root, VISA_CSV), newline='', encoding='utf-8') as f:
            objects = sorted({r['object'] for r in csv.DictReader(f)})
        return {c: dict(root=data_root, options=[
            f'{loader}.dataset.{key}={value}' for loader in ('train_dataloader',
                                                             'test_dataloader')
            for key, value in (('type', 'anomaly_plugin.VisADataset'), ('category', c),
                               ('split_csv', VISA_CSV))]) for c in objects}
    found = {d: dict(root=osp.join(data_root, d), options=[])
             for d in sorted(os.listdir(data_root))
             if osp.isdir(osp.join(data_root, d, 'train'))}
    if not found:
        raise FileNotFoundError(f'{data_root!r} holds no train/ folder, no {VISA_CSV} '
                                'and no category folders with a train/ folder')
    return found


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(tool: str, args: List[str], log: str, peak: str, verbose: bool,
         nproc: int = 1) -> None:
    """Run ``tools/<tool>`` in a child (``nproc`` > 1: that many processes through
    ``torch.distributed.run`` and MMEngine's ``pytorch`` launcher); its output goes
    to ``log`` (and to stdout with ``verbose``); an exit status other than 0 raises
    with the last lines."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
         env.get('PYTHONPATH', '')])
    tool_path = osp.join(tools_root(), 'tools', tool)
    if nproc > 1:
        runner = osp.join(osp.dirname(peak), '.survey_runner.py')
        with open(runner, 'w') as f:
            f.write(_RUNNER)
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc),
               '--master_addr', '127.0.0.1', '--master_port', str(_free_port()), runner,
               peak, tool_path, *args, '--launcher', 'pytorch']
    else:
        cmd = [sys.executable, '-c', _RUNNER, peak, tool_path, *args]
    tail = deque(maxlen=25)
    with open(log, 'a', encoding='utf-8') as f, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            errors='replace') as proc:
        for line in proc.stdout:
            f.write(line)
            tail.append(line.rstrip())
            if verbose:
                print(line, end='', flush=True)
        code = proc.wait()
    if code != 0:
        last = [ln for ln in tail if ln.strip()]
        raise RuntimeError(f'{tool} exited with status {code}: ' + ' | '.join(last[-3:]))


def _checkpoint(work: str) -> Optional[str]:
    ckpts = glob.glob(osp.join(work, 'epoch_*.pth')) + glob.glob(osp.join(work, 'iter_*.pth'))
    key = lambda p: int(osp.basename(p).split('_')[1].split('.')[0])  # noqa: E731
    return max(ckpts, key=key) if ckpts else None


def _parameters(config: str) -> int:
    from mmengine.config import Config

    from anomaly_plugin.registry import MODELS
    model = MODELS.build(Config.fromfile(config).model)
    return sum(p.numel() for p in model.parameters())


def _threshold(ckpt: str) -> Optional[float]:
    from anomaly_plugin.engine import safe_load
    value = safe_load(ckpt)['state_dict'].get('postprocessor.image_threshold')
    return None if value is None else float(value)


def _ng_rate(predictions: str) -> Optional[float]:
    with open(predictions, newline='', encoding='utf-8') as f:
        normal = [r for r in csv.DictReader(f) if r['gt_label'] == '0']
    decided = [r for r in normal if r['decision'] in ('OK', 'NG')]
    return sum(r['decision'] == 'NG' for r in decided) / len(decided) if decided else None


def _schedule(work: str) -> str:
    """``'7/20 epochs (budget)'`` when the time budget shortened the training."""
    path = osp.join(work, 'time_budget.json')
    if not osp.isfile(path):
        return ''
    with open(path) as f:
        b = json.load(f)
    return f'{b["epochs"]}/{b["max_epochs"]} epochs (budget)' if b['stopped'] else ''


#: the training clock of a method's latest attempt: its wall-clock start and the
#: seconds of earlier attempts that a resume builds on
TRAIN_CLOCK = 'train_clock.json'


def earlier_train_seconds(work: str) -> float:
    """Training seconds that a resumed attempt in ``work`` builds on.

    An attempt that was stopped counts from its start to the time its last
    checkpoint was written (the work after it is lost and done again), added
    to what that attempt itself built on. 0 without a checkpoint, or when the
    checkpoint did not come from a survey attempt (no clock file).
    """
    ckpt, path = _checkpoint(work), osp.join(work, TRAIN_CLOCK)
    if ckpt is None or not osp.isfile(path):
        return 0.0
    with open(path) as f:
        clock = json.load(f)
    return clock['earlier'] + max(0.0, osp.getmtime(ckpt) - clock['start'])


def run_method(method: str, config: str, data_root: str, work: str,
               cfg_options: Sequence[str] = (), verbose: bool = True,
               budget_s: Optional[float] = None, nproc: int = 1) -> dict:
    """Train and test one config; returns its row (raises on failure).

    ``budget_s``: training seconds allowed (a :class:`TimeBudgetHook` ends the
    training after the epoch at which one more would pass it; the row's
    ``schedule`` then says how many epochs ran). ``nproc``: processes per
    tool (distributed training and testing through MMEngine's launcher).
    A method stopped during training resumes from its last checkpoint; its
    ``train_s`` then adds the earlier attempts' seconds up to that checkpoint
    (:func:`earlier_train_seconds`) and ``schedule`` says it was resumed.
    """
    os.makedirs(work, exist_ok=True)
    log = osp.join(work, 'survey.log')
    opts = ['--cfg-options', *cfg_options] if cfg_options else []
    budget = [f'time_budget_s={budget_s}'] if budget_s else []
    train_opts = ['--cfg-options', *cfg_options, *budget] if (cfg_options or budget) else []
    resumed_from = _checkpoint(work)
    resume = ['--resume'] if resumed_from else []
    earlier = earlier_train_seconds(work)
    with open(osp.join(work, TRAIN_CLOCK), 'w') as f:
        json.dump(dict(start=time.time(), earlier=earlier), f)
    start = time.perf_counter()
    _run('train.py', [config, '--data-root', data_root, '--work-dir', work, '--no-validate',
                      *resume, *train_opts], log, osp.join(work, 'peak_train.json'), verbose,
         nproc)
    train_s = earlier + time.perf_counter() - start
    ckpt = _checkpoint(work)
    if ckpt is None:
        raise RuntimeError(f'training wrote no checkpoint in {work}')
    test_dir = osp.join(work, 'test')
    start = time.perf_counter()
    _run('test.py', [config, ckpt, '--data-root', data_root, '--work-dir', test_dir,
                     '--curves-dir', osp.join(test_dir, 'curves'), *opts],
         log, osp.join(work, 'peak_test.json'), verbose, nproc)
    test_s = time.perf_counter() - start
    with open(osp.join(test_dir, 'metrics.json')) as f:
        metrics = json.load(f)
    predictions = osp.join(test_dir, 'predictions.csv')
    with open(predictions, newline='', encoding='utf-8') as f:
        n_test = sum(1 for _ in csv.DictReader(f))
    peaks = []  # every process of both tools (ranks > 0 in peak_*.json.rank<r>)
    for path in glob.glob(osp.join(work, 'peak_*.json*')):
        with open(path) as f:
            peaks.append(json.load(f)['peak_rss_kb'])
    notes = [_schedule(work)] + ([f'resumed from {osp.basename(resumed_from)}']
                                 if resumed_from else [])
    return dict(metrics, train_s=train_s, test_images_per_s=n_test / test_s,
                peak_rss_mb=max(peaks) / 1024, parameters=_parameters(config),
                image_threshold=_threshold(ckpt), ng_rate_normal=_ng_rate(predictions),
                schedule='; '.join(n for n in notes if n), checkpoint=ckpt)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f'{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}'


def run_survey(data_root: str, methods: Optional[Sequence[str]] = None,
               families: Optional[Sequence[str]] = None, run_all: bool = False,
               work_dir: str = 'work_dirs/survey', cfg_options: Sequence[str] = (),
               retry_failed: bool = True, verbose: bool = True,
               report: bool = True, budget_s: Optional[float] = None,
               nproc: int = 1) -> List[dict]:
    """Train and test the chosen methods on every category of ``data_root``.

    Args:
        data_root: a category folder (MVTec layout), a root of them, or a VisA
            root (see :func:`categories`).
        methods: method names (config names without ``_mvtec.py``) or paths of
            config files of your own.
        families: families instead of names (see :data:`FAMILIES`).
        run_all: every shipped config.
        work_dir: where each method's work dir and the tables go.
        cfg_options: ``KEY=VALUE`` options applied to every method.
        retry_failed: run methods that failed in an earlier survey again.
        verbose: show each method's own output.
        report: also write ``report.html`` (see
            :mod:`~anomaly_plugin.apis.survey_report`).
        budget_s: training seconds allowed per method (see :func:`run_method`).
        nproc: processes per method (distributed through MMEngine's launcher).

    Returns:
        The rows of the table (also written to ``survey.csv``, ``survey.json``
        and ``survey.md`` in ``work_dir``).
    """
    names = select_methods(methods, families, run_all)
    cats = categories(data_root)
    jobs = [(c, m) for c in cats for m in names]
    rows, spent, done_runs = [], 0.0, 0
    start = time.perf_counter()
    for i, (cat, method) in enumerate(jobs):
        info = method_info(method)
        method = info['name']
        work = osp.join(work_dir, cat, method)
        result_file = osp.join(work, 'result.json')
        row = dict(category=cat, method=method, family=info['family'], config=info['config'])
        old = None
        if osp.isfile(result_file):
            with open(result_file) as f:
                old = json.load(f)
        if old and (old['status'] == 'ok' or not retry_failed):
            rows.append(old)
            print(f'[survey {i + 1}/{len(jobs)}] {cat}/{method}: {old["status"]} in an '
                  'earlier run, skipped', flush=True)
            continue
        elapsed = time.perf_counter() - start
        left = len(jobs) - i
        eta = f', about {_clock(spent / done_runs * left)} left' if done_runs else ''
        print(f'[survey {i + 1}/{len(jobs)}] {cat}/{method} ({info["family"]}), elapsed '
              f'{_clock(elapsed)}{eta}', flush=True)
        t0 = time.perf_counter()
        try:
            row.update(run_method(method, info['config'], cats[cat]['root'], work,
                                  [*cats[cat]['options'], *cfg_options], verbose, budget_s,
                                  nproc),
                       status='ok')
        except Exception as err:  # one method's failure is reported; the survey goes on
            row.update(status='failed', error=' '.join(str(err).split())[:500])
            print(f'[survey] {cat}/{method} failed: {row["error"]}', flush=True)
        spent += time.perf_counter() - t0
        done_runs += 1
        os.makedirs(work, exist_ok=True)
        with open(result_file, 'w') as f:
            json.dump(row, f, indent=2)
        rows.append(row)
    write_tables(rows, work_dir)
    if report and any(r.get('status') == 'ok' for r in rows):
        from .survey_report import write_report
        peak = osp.join(work_dir, 'report', 'peak.json')
        try:
            path = write_report(
                rows, work_dir, lambda tool, args, log: _run(tool, args, log, peak, False),
                [c for c in COLUMNS if c not in ('config', 'error')], _fmt, cfg_options)
            print(f'[survey] report: {path}', flush=True)
        except Exception as err:  # the tables are written: say why the report is not
            print(f'[survey] report.html not written: {" ".join(str(err).split())}',
                  flush=True)
    print(f'[survey] {len(jobs)} run(s) in {_clock(time.perf_counter() - start)}; tables in '
          f'{work_dir}', flush=True)
    return rows


def _fmt(key: str, value) -> str:
    if value is None or value == '':
        return ''
    if key in METRIC_KEYS or key == 'ng_rate_normal':
        return f'{100 * float(value):.2f}'
    if isinstance(value, float):
        return f'{value:.4g}' if key == 'image_threshold' else f'{value:.1f}'
    return str(value)


def write_tables(rows: List[dict], work_dir: str) -> None:
    """``survey.csv`` (raw values), ``survey.json`` and ``survey.md`` (metrics and
    NG rate in percent) in ``work_dir``."""
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, 'survey.csv'), 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, restval='', extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    with open(osp.join(work_dir, 'survey.json'), 'w') as f:
        json.dump(rows, f, indent=2)
    shown = [c for c in COLUMNS if c not in ('config', 'error')]
    lines = ['| ' + ' | '.join(shown) + ' |', '|' + ' --- |' * len(shown)]
    for r in rows:
        lines.append('| ' + ' | '.join(_fmt(c, r.get(c)) for c in shown) + ' |')
    failed = [r for r in rows if r.get('status') != 'ok']
    if failed:
        lines += [''] + [f'- {r["category"]}/{r["method"]}: {r.get("error", "")}'
                         for r in failed]
    with open(osp.join(work_dir, 'survey.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
