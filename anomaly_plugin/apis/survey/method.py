"""One method of a survey: ``tools/train.py`` then ``tools/test.py`` in child
processes (one method's crash cannot take the survey down, and each shows its
own progress), the training clock kept across a stop and a resume, and the row
of the table (metrics, time, memory, parameters, threshold, NG rate)."""
import csv
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from collections import deque
from typing import List, Optional, Sequence

import anomaly_plugin

from .catalogue import tools_root

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


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(tool: str, args: List[str], log: str, peak: str, verbose: bool,
         nproc: int = 1) -> None:
    """Run ``tools/<tool>`` in a child (``nproc`` > 1: that many processes through
    ``torch.distributed.run`` and MMEngine's ``pytorch`` launcher); its output goes
    to ``log`` (and to stdout with ``verbose``); an exit status other than 0 raises
    with the last lines."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [osp.dirname(osp.dirname(osp.abspath(anomaly_plugin.__file__))),
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
    run_tool('train.py', [config, '--data-root', data_root, '--work-dir', work, '--no-validate',
                      *resume, *train_opts], log, osp.join(work, 'peak_train.json'), verbose,
         nproc)
    train_s = earlier + time.perf_counter() - start
    ckpt = _checkpoint(work)
    if ckpt is None:
        raise RuntimeError(f'training wrote no checkpoint in {work}')
    test_dir = osp.join(work, 'test')
    start = time.perf_counter()
    run_tool('test.py', [config, ckpt, '--data-root', data_root, '--work-dir', test_dir,
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
