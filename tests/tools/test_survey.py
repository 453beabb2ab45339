"""tools/survey.py: a 3-method survey end to end as a subprocess, killed after its
first method and started again (the first is skipped, its result kept), the table
equal to each method's own tools/test.py metrics; a failing method is reported and
the others finish."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser

import pytest
from conftest import ROOT, make_mvtec

from anomaly_plugin.apis.survey import DEFAULT_METHODS, run_survey, select_methods

OPTIONS = ['train_cfg.max_epochs=1', 'train_cfg.min_iters=0', 'img_size=32',
           'train_dataloader.batch_size=4']
METHODS = ['conv_ae', 'ssim_ae', 'draem']


def survey_cmd(data, work):
    return [sys.executable, 'tools/survey.py', str(data), '--methods', *METHODS, '--work-dir',
            str(work), '--quiet', '--cfg-options', *OPTIONS]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')


@pytest.mark.slow
def test_survey_resumes_after_a_kill_and_matches_each_methods_metrics(tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=12, n_good=3, n_bad=3)
    work = tmp_path / 'work'
    first = work / 'cat' / METHODS[0] / 'result.json'
    proc = subprocess.Popen(survey_cmd(data, work), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the survey and its running child
    proc.wait()
    assert first.exists()
    kept = json.loads(first.read_text())
    assert kept['status'] == 'ok'
    assert not (work / 'survey.csv').exists()  # stopped before the end
    out = subprocess.run(survey_cmd(data, work), cwd=ROOT, env=env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f'cat/{METHODS[0]}: ok in an earlier run, skipped' in out.stdout
    with open(work / 'survey.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['method'] for r in rows] == METHODS and {r['status'] for r in rows} == {'ok'}
    assert json.loads(first.read_text()) == kept  # not run again
    for r in rows:
        metrics = json.loads((work / 'cat' / r['method'] / 'test' / 'metrics.json').read_text())
        assert len(metrics) == 7
        for k, v in metrics.items():
            assert float(r[k]) == v, (r['method'], k)
        assert float(r['train_s']) > 0 and float(r['test_images_per_s']) > 0
        assert float(r['peak_rss_mb']) > 100 and int(r['parameters']) > 1000
        assert 0 <= float(r['ng_rate_normal']) <= 1
    md = (work / 'survey.md').read_text()
    assert md.count('| cat |') == 3
    assert len(json.loads((work / 'survey.json').read_text())) == 3


def test_a_failing_method_is_reported_and_the_others_finish(tmp_path, capsys):
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=8, n_good=2, n_bad=2)
    broken = tmp_path / 'broken_ae.py'
    broken.write_text("model = dict(type='NoSuchDetector')\n")  # a config error
    options = [o for o in OPTIONS if 'max_epochs' not in o] + ['train_cfg.max_epochs=2']
    rows = run_survey(str(data), methods=[str(broken), 'conv_ae'], work_dir=str(tmp_path / 'w'),
                      cfg_options=options, verbose=False, budget_s=1e-3)
    assert [(r['method'], r['status']) for r in rows] == [('broken_ae', 'failed'),
                                                          ('conv_ae', 'ok')]
    assert rows[1]['schedule'] == '1/2 epochs (budget)'  # the budget shortened it
    assert rows[0]['error'].startswith('train.py exited with status 1')
    assert 'broken_ae' in (tmp_path / 'w' / 'survey.md').read_text()
    check_report(tmp_path / 'w' / 'report.html', methods=['conv_ae'])


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.stack, self.tags = [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags += 1
        attrs = dict(attrs)
        for key in ('src', 'href'):
            if attrs.get(key):
                self.refs.append(attrs[key])
        if tag not in ('img', 'meta', 'br', 'rect', 'polyline'):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in ('img', 'meta', 'br', 'rect', 'polyline'):
            return
        assert self.stack and self.stack[-1] == tag, (self.stack[-3:], tag)
        self.stack.pop()


def check_report(path, methods):
    """The page parses (tags balanced), references only files that exist (no
    external URL) and shows every method's heat-maps and curves."""
    text = path.read_text(encoding='utf-8')
    page = _Page()
    page.feed(text)
    page.close()
    assert not page.stack and page.tags > 50
    assert page.refs and all('://' not in r for r in page.refs)
    for ref in page.refs:
        assert (path.parent / ref).is_file(), ref
    for m in methods:
        assert sum(f'/{m}/' in r for r in page.refs) >= 4  # one heat-map per chosen image
    assert text.count('<svg') == 3 and 'sortTable' in text


def test_method_selection():
    assert select_methods() == list(DEFAULT_METHODS)  # every default is shipped
    assert 'draem' in select_methods(families=['synthetic anomalies'])
    assert len(select_methods(run_all=True)) > 25
    with pytest.raises(ValueError, match='no_such_method'):
        select_methods(['no_such_method'])


def test_a_visa_root_is_surveyed_per_object(tmp_path):
    from conftest import make_visa
    make_visa(tmp_path / 'visa')
    rows = run_survey(str(tmp_path / 'visa'), methods=['conv_ae'], work_dir=str(tmp_path / 'w'),
                      cfg_options=OPTIONS + ['holdout_ratio=0.25'], verbose=False,
                      report=False)
    assert [(r['category'], r['status']) for r in rows] == [('candle', 'ok'), ('pcb1', 'ok')], \
        [r.get('error') for r in rows]
    for r in rows:  # each object's own 3 test images
        preds = (tmp_path / 'w' / r['category'] / 'conv_ae' / 'test' / 'predictions.csv')
        lines = preds.read_text().splitlines()[1:]
        assert len(lines) == 3 and all(f'/{r["category"]}/' in ln for ln in lines)


@pytest.mark.slow
def test_survey_runs_each_method_on_two_processes(tmp_path):
    data = make_mvtec(tmp_path / 'cat', size=32, n_train=9, n_good=2, n_bad=2)
    row = run_survey(str(data), methods=['conv_ae'], work_dir=str(tmp_path / 'w'),
                     cfg_options=OPTIONS, verbose=False, report=False, nproc=2)[0]
    assert row['status'] == 'ok', row.get('error')
    work = tmp_path / 'w' / 'cat' / 'conv_ae'
    assert (work / 'peak_train.json.rank1').exists()  # a second process trained
    assert (work / 'peak_test.json.rank1').exists()  # and tested
    log = (work / 'survey.log').read_text()
    assert log.count('Distributed launcher: pytorch') == 2  # train and test
    metrics = json.loads((work / 'test' / 'metrics.json').read_text())
    assert row['image/AUROC'] == metrics['image/AUROC']
