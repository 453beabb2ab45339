"""tools/infer.py on awkward inputs, the dist_*.sh interpreter choice and
tools/test.py's checkpoint errors (the tools run as subprocesses, as users run them)."""
import csv
import json
import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch
from conftest import (
    AE_CONFIG,
    ROOT,
    UnsafePayload,
    make_mvtec,
    options_to_cli,
    run_failing,
    run_tool,
    tiny_ae_options,
)
from corpus import make_corpus
from mmengine.config import Config

import anomaly_plugin  # noqa: F401  (registers the modules)
from anomaly_plugin.apis import inference, inference_results, init_detector
from anomaly_plugin.apis.results import NAME_MAX, ResultsWriter, fit_name, output_names
from anomaly_plugin.datasets.image_io import display_path

FIELDS = ['image', 'score', 'norm_score', 'decision', 'heatmap', 'mask', 'error', 'warning']
MODEL_OPTS = ('model.', 'img_size')


def image(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(90, 160, (h, w, 3), dtype=np.uint8)


def write_bad_files(folder):
    """A truncated PNG, a 0-byte PNG and a text file named .png."""
    folder.mkdir(parents=True, exist_ok=True)
    png = cv2.imencode('.png', image(40, 40, 9))[1].tobytes()
    (folder / 'truncated.png').write_bytes(png[:len(png) // 2])
    (folder / 'empty.png').write_bytes(b'')
    (folder / 'text.png').write_text('not an image\n')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('infer')
    data = make_mvtec(tmp / 'cat', size=32)
    work = tmp / 'work'
    opts = tiny_ae_options(data, epochs=1)
    run_tool(['tools/train.py', AE_CONFIG, '--work-dir', str(work), '--no-validate',
              '--cfg-options', *options_to_cli(opts)])
    ckpt = work / 'epoch_1.pth'
    assert ckpt.exists()
    return dict(tmp=tmp, data=data, work=work, ckpt=ckpt, opts=opts,
                config=work / 'conv_ae_mvtec.py')


@pytest.fixture(scope='module')
def mixed(trained):
    """One --recursive run over good, bad, hidden and same-stem files, from the
    repository config + --cfg-options (the checkpoint fits only with them)."""
    src = trained['tmp'] / 'inputs'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), image(40, 40, 1))
    cv2.imwrite(str(src / 'a.jpg'), image(36, 48, 2))  # same stem, another size
    cv2.imwrite(str(src / 'b.png'), image(32, 32, 3))
    (src / 'sub').mkdir()
    cv2.imwrite(str(src / 'sub' / 'a.png'), image(24, 30, 4))  # same name, sub-folder
    write_bad_files(src)
    (src / '._a.png').write_bytes(b'\x00\x05\x16\x07AppleDouble')  # hidden: skipped
    (src / '.cache').mkdir()
    cv2.imwrite(str(src / '.cache' / 'c.png'), image(32, 32, 5))  # hidden folder
    (src / 'notes.txt').write_text('not an image')
    out = src / 'results'  # inside the scanned folder: never scanned itself
    out.mkdir()
    cv2.imwrite(str(out / 'old_heatmap.png'), image(8, 8, 6))
    opts = {k: v for k, v in trained['opts'].items() if k.startswith(MODEL_OPTS)}
    log = run_tool(['tools/infer.py', AE_CONFIG, str(trained['ckpt']), str(src),
                    '--out', str(out), '--recursive', '--batch-size', '2',
                    '--cfg-options', *options_to_cli(opts)])
    rows = json.loads((out / 'results.json').read_text())
    with open(out / 'results.csv', newline='') as f:
        reader = csv.DictReader(f)
        csv_rows = list(reader)
        header = reader.fieldnames
    return dict(src=src, out=out, log=log, rows={r['image']: r for r in rows},
                order=[r['image'] for r in rows], csv_rows=csv_rows, header=header)


def test_infer_reports_unreadable_files_and_scores_the_rest(mixed):
    src = mixed['src']
    expected = ['a.jpg', 'a.png', 'b.png', 'empty.png', os.path.join('sub', 'a.png'),
                'text.png', 'truncated.png']
    assert mixed['order'] == [str(src / p) for p in expected]  # hidden files skipped
    rows = mixed['rows']
    for bad in ('empty.png', 'text.png', 'truncated.png'):
        row = rows[str(src / bad)]
        assert row['decision'] == 'error' and row['score'] is None
        assert row['heatmap'] is None and bad in row['error']
    assert 'empty (0 bytes)' in rows[str(src / 'empty.png')]['error']
    assert 'corrupt or truncated' in rows[str(src / 'truncated.png')]['error']
    good = [r for r in rows.values() if r['decision'] != 'error']
    assert len(good) == 4
    assert all(r['decision'] in ('OK', 'NG') and np.isfinite(r['score']) for r in good)
    assert '7 images: 4 scored' in mixed['log'] and '3 could not be read' in mixed['log']


def test_infer_csv_has_every_row_with_fixed_columns(mixed):
    assert mixed['header'] == FIELDS
    assert [r['image'] for r in mixed['csv_rows']] == mixed['order']
    by_image = {r['image']: r for r in mixed['csv_rows']}
    empty = by_image[str(mixed['src'] / 'empty.png')]
    assert empty['decision'] == 'error' and empty['score'] == '' and empty['error']
    assert float(by_image[str(mixed['src'] / 'b.png')]['score']) == pytest.approx(
        mixed['rows'][str(mixed['src'] / 'b.png')]['score'])


def test_infer_same_stems_get_their_own_outputs(mixed):
    src, out, rows = mixed['src'], mixed['out'], mixed['rows']
    shapes = {'a.png': (40, 40), 'a.jpg': (36, 48), os.path.join('sub', 'a.png'): (24, 30)}
    for name, shape in shapes.items():
        row = rows[str(src / name)]
        assert row['heatmap'] == f'{name}_heatmap.png'
        assert row['mask'] == f'{name}_mask.png'
        heat = cv2.imread(str(out / row['heatmap']))
        mask = cv2.imread(str(out / row['mask']), cv2.IMREAD_UNCHANGED)
        assert heat.shape == (*shape, 3) and mask.shape == shape  # each at its own size
        assert set(mask.ravel().tolist()) <= {0, 255}


def test_infer_exits_nonzero_only_when_nothing_is_scored(trained):
    src = trained['tmp'] / 'all_bad'
    write_bad_files(src)
    out = trained['tmp'] / 'all_bad_out'
    proc = run_failing(['tools/infer.py', str(trained['config']), str(trained['ckpt']),
                        str(src), '--out', str(out)])
    assert 'none of the 3 images could be scored' in proc.stderr
    assert 'empty (0 bytes)' in proc.stderr
    rows = json.loads((out / 'results.json').read_text())  # written all the same
    assert [r['decision'] for r in rows] == ['error'] * 3
    with open(out / 'results.csv', newline='') as f:
        assert len(list(csv.DictReader(f))) == 3


def test_results_rows_reach_the_disk_as_they_come(tmp_path):
    row = dict(image='x.png', score=1.5, norm_score=0.5, decision='NG',
               heatmap='x.png_heatmap.png', mask='x.png_mask.png', error=None, warning=None)
    with pytest.raises(KeyboardInterrupt):
        with ResultsWriter(str(tmp_path)) as writer:
            writer.write(row)
            with open(tmp_path / 'results.csv', newline='') as f:  # before the end
                assert list(csv.DictReader(f)) == [
                    {**{k: str(v) for k, v in row.items()}, 'error': '', 'warning': ''}]
            raise KeyboardInterrupt  # the run stops: the rows so far are kept
    assert json.loads((tmp_path / 'results.json').read_text()) == [row]


def test_inference_results_isolate_a_bad_file_in_a_batch(trained, tmp_path):
    good = [str(tmp_path / f'{i}.png') for i in range(3)]
    for i, path in enumerate(good):
        cv2.imwrite(path, image(32, 32, 10 + i))
    write_bad_files(tmp_path)
    bad = str(tmp_path / 'truncated.png')
    by_path = init_detector(str(trained['config']), str(trained['ckpt']))
    by_cfg = init_detector(Config.fromfile(trained['config']), str(trained['ckpt']))
    alone = [float(s.pred_score) for s in inference(by_cfg, good, batch_size=1)]
    results = list(inference_results(by_path, [good[0], bad, good[1], good[2]],
                                     batch_size=2))
    assert [r.img_path for r in results] == [good[0], bad, good[1], good[2]]
    assert results[1].sample is None and 'corrupt or truncated' in str(results[1].error)
    scores = [float(r.sample.pred_score) for r in results if r.error is None]
    assert scores == pytest.approx(alone, rel=1e-5)
    with pytest.raises(ValueError, match='corrupt or truncated'):
        list(inference(by_path, [good[0], bad]))


def fake_python(path, tag):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\necho "{tag} $*"\n')
    path.chmod(0o755)


@pytest.mark.parametrize('script,args,tail', [
    ('dist_train.sh', ['cfg.py', '2', '--no-validate'],
     'train.py cfg.py --launcher pytorch --no-validate'),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2', '--visualize'],
     'test.py cfg.py ckpt.pth --launcher pytorch --visualize')])
def test_dist_scripts_find_python_without_python_on_path(tmp_path, script, args, tail):
    repo = tmp_path / 'repo'
    (repo / 'tools').mkdir(parents=True)
    for name in (script, 'launch.sh'):
        shutil.copy(ROOT / 'tools' / name, repo / 'tools' / name)
    fake_python(tmp_path / 'bin' / 'python3', 'PATH-python3')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')}
    env['PATH'] = f"{tmp_path / 'bin'}:/usr/bin:/bin"  # no `python` there

    def launch(**extra):
        proc = subprocess.run(['bash', str(repo / 'tools' / script), *args],
                              env=dict(env, **extra), capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert '-m torch.distributed.run' in proc.stdout and '--nproc_per_node=2' in proc.stdout
        assert proc.stdout.rstrip().endswith(tail)
        return proc.stdout.split()[0]

    assert launch() == 'PATH-python3'  # no venv, no $PYTHON
    fake_python(repo / '.venv' / 'bin' / 'python', 'venv-python')
    assert launch() == 'venv-python'
    fake_python(tmp_path / 'mine' / 'python', 'env-python')
    assert launch(PYTHON=str(tmp_path / 'mine' / 'python')) == 'env-python'


def test_test_tool_names_an_unsafe_checkpoint(trained):
    marker = trained['tmp'] / 'pwned'
    evil = trained['tmp'] / 'evil.pth'
    state = torch.load(trained['ckpt'], weights_only=True)
    torch.save(dict(state, payload=UnsafePayload(marker)), evil)
    proc = run_failing(['tools/test.py', str(trained['config']), str(evil),
                        '--work-dir', str(trained['tmp'] / 'evil_test')])
    assert f'refusing to load checkpoint {evil}' in proc.stderr
    assert 'not plain data' in proc.stderr
    assert 'does not fit' not in proc.stderr + proc.stdout
    assert not marker.exists()


# ------------------------------------------------------------ the odd-file corpus
@pytest.fixture(scope='module')
def fuzz(trained):
    """The generated corpus of odd files through tools/infer.py, flat and --recursive."""
    src = trained['tmp'] / 'fuzz'
    expect = make_corpus(str(src))
    opts = {k: v for k, v in trained['opts'].items() if k.startswith(MODEL_OPTS)}
    runs = {}
    for mode in ('flat', 'recursive'):
        out = trained['tmp'] / f'fuzz_{mode}'
        log = run_tool(['tools/infer.py', AE_CONFIG, str(trained['ckpt']), str(src),
                        '--out', str(out), '--batch-size', '4', '--cfg-options',
                        *options_to_cli(opts)] + (['--recursive'] if mode == 'recursive' else []))
        with open(out / 'results.csv', newline='', encoding='utf-8') as f:
            csv_rows = list(csv.DictReader(f))
        runs[mode] = dict(out=out, log=log, csv_rows=csv_rows,
                          rows=json.loads((out / 'results.json').read_text(encoding='utf-8')))
    return dict(src=src, expect=expect, runs=runs)


@pytest.mark.parametrize('mode', ['flat', 'recursive'])
def test_every_odd_file_gets_its_row(fuzz, mode):
    src, run = fuzz['src'], fuzz['runs'][mode]
    expect = {n: e for n, e in fuzz['expect'].items() if mode == 'recursive' or os.sep not in n}
    rows = {r['image']: r for r in run['rows']}
    assert len(run['rows']) == len(rows) == len(expect) == len(run['csv_rows'])  # one each
    assert [r['image'] for r in run['csv_rows']] == [r['image'] for r in run['rows']]
    outcomes = []
    for name, e in expect.items():
        row = rows[display_path(os.path.join(str(src), name))]
        scored = row['decision'] != 'error'
        outcomes.append(scored)
        if e[0] == 'error' or (e[0] == 'scored?' and not scored):
            assert not scored, name
            assert row['score'] is None and row['heatmap'] is None
            assert display_path(os.path.basename(name)) in row['error'], (name, row['error'])
            if e[0] == 'error':
                assert e[1] in row['error'], (name, row['error'])
            continue
        assert scored, (name, row['error'])
        assert np.isfinite(row['score']) and row['decision'] in ('OK', 'NG')
        heat = cv2.imdecode(np.fromfile(run['out'] / row['heatmap'], np.uint8),
                            cv2.IMREAD_COLOR)
        if e[0] == 'scored':
            assert heat.shape[:2] == e[1], name  # at the image's own size
            assert (e[2] in (row['warning'] or '')) if len(e) > 2 else not row['warning'], \
                (name, row['warning'])
    assert any(outcomes) and not all(outcomes)
    failed = sum(not s for s in outcomes)
    assert f'{len(expect)} images: {len(expect) - failed} scored' in run['log']


def test_odd_names_get_outputs_that_fit(fuzz):
    rows = fuzz['runs']['flat']['rows']
    heatmaps = [r['heatmap'] for r in rows if r['heatmap']]
    assert len(set(heatmaps)) == len(heatmaps)  # no two inputs share an output
    for h in heatmaps:
        h.encode('utf-8')  # printable
        assert all(len(part.encode()) <= NAME_MAX for part in h.split('/'))
    long_row = next(r for r in rows if os.path.basename(r['image']).startswith('lll'))
    assert long_row['image'].endswith('l' * 251 + '.png')  # the full input name is kept
    assert '~' in long_row['heatmap'] and long_row['decision'] != 'error'
    raw = next(r for r in rows if 'latin1_caf' in r['image'])
    assert raw['image'].endswith('latin1_caf\\xe9.png') and raw['decision'] != 'error'
    assert (fuzz['runs']['flat']['out'] / raw['heatmap']).is_file()


def test_output_names_fit_and_stay_apart(tmp_path):
    assert fit_name('a.png') == 'a.png'
    long_a, long_b = 'a' * 250 + '1.png', 'a' * 250 + '2.png'
    fa, fb = fit_name(long_a), fit_name(long_b)
    assert fa != fb and fa == fit_name(long_a)  # apart, and stable
    assert len((fa + '_heatmap.png').encode()) <= NAME_MAX
    utf8 = fit_name('é' * 127)  # cut at a character boundary
    utf8.encode('utf-8')
    names = output_names([str(tmp_path / 'x' / 'a.png'), str(tmp_path / 'y' / 'a.png'),
                          np.zeros((2, 2), np.uint8), str(tmp_path / 'x' / 'a.png')])
    assert names == ['x/a.png', 'y/a.png', '00000002', 'x/a.png_3']
