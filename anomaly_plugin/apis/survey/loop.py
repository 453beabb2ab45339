"""The survey: train and test several shipped configs on one data set, one table.

Each method runs ``tools/train.py`` and ``tools/test.py`` as child processes (one
method's crash cannot take the survey down, and each shows its own progress);
its results land in ``<work_dir>/<category>/<method>/result.json``. A survey
started again skips the methods whose result says ``ok`` and resumes a method
whose training stopped part-way from its last checkpoint; a method that failed
is tried again (``retry_failed=False`` keeps its failure). The table rows are
written as ``survey.csv``, ``survey.json`` and ``survey.md`` in ``work_dir``.
"""
import json
import os
import os.path as osp
import time
from typing import List, Optional, Sequence

from .catalogue import categories, method_info, select_methods
from .method import run_method, run_tool
from .tables import COLUMNS, _fmt, write_tables


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
            :mod:`~anomaly_plugin.apis.survey.report`).
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
        from .report import write_report
        peak = osp.join(work_dir, 'report', 'peak.json')
        try:
            path = write_report(
                rows, work_dir, lambda tool, args, log: run_tool(tool, args, log, peak, False),
                [c for c in COLUMNS if c not in ('config', 'error')], _fmt, cfg_options)
            print(f'[survey] report: {path}', flush=True)
        except Exception as err:  # the tables are written: say why the report is not
            print(f'[survey] report.html not written: {" ".join(str(err).split())}',
                  flush=True)
    print(f'[survey] {len(jobs)} run(s) in {_clock(time.perf_counter() - start)}; tables in '
          f'{work_dir}', flush=True)
    return rows
