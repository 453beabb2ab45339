"""One method of a survey (``run_method``) with its tools faked: the training clock
kept across a stop and a resume."""
import json
import os

import pytest

from anomaly_plugin.apis.survey import method


def test_a_resumed_method_counts_the_earlier_attempts_training_time(tmp_path, monkeypatch):
    """A method stopped during training (its checkpoint and clock left behind)
    resumes with --resume; train_s adds the stopped attempt's seconds up to its
    last checkpoint, and the row says it was resumed."""
    calls = []

    def fake_run(tool, args, log, peak, verbose, nproc=1):
        calls.append((tool, list(args)))
        with open(peak, 'w') as f:
            json.dump(dict(peak_rss_kb=1024), f)
        if tool == 'test.py':
            test_dir = args[args.index('--work-dir') + 1]
            os.makedirs(test_dir, exist_ok=True)
            with open(os.path.join(test_dir, 'metrics.json'), 'w') as f:
                json.dump({'image/AUROC': 1.0}, f)
            with open(os.path.join(test_dir, 'predictions.csv'), 'w') as f:
                f.write('image,gt_label,decision\na.png,0,OK\nb.png,1,NG\n')
        else:
            (work / 'epoch_4.pth').write_bytes(b'')

    monkeypatch.setattr(method, 'run_tool', fake_run)
    monkeypatch.setattr(method, '_parameters', lambda config: 7)
    monkeypatch.setattr(method, '_threshold', lambda ckpt: 0.5)
    work = tmp_path / 'm'
    work.mkdir()
    # the stopped attempt: started 100 s before its last checkpoint, on top of 30 s
    # of an attempt before it
    ckpt = work / 'epoch_2.pth'
    ckpt.write_bytes(b'')
    mtime = os.path.getmtime(ckpt)
    (work / method.TRAIN_CLOCK).write_text(json.dumps(dict(start=mtime - 100.0, earlier=30.0)))
    assert method.earlier_train_seconds(str(work)) == pytest.approx(130.0)

    row = method.run_method('m', 'cfg.py', 'data', str(work))
    assert '--resume' in calls[0][1]
    assert 130.0 <= row['train_s'] < 140.0
    assert row['schedule'] == 'resumed from epoch_2.pth'
    assert row['checkpoint'].endswith('epoch_4.pth')
    clock = json.loads((work / method.TRAIN_CLOCK).read_text())
    assert clock['earlier'] == pytest.approx(130.0)

    # a fresh method (no checkpoint): no resume, no earlier seconds
    fresh = tmp_path / 'f'
    fresh.mkdir()
    work = fresh
    row = method.run_method('f', 'cfg.py', 'data', str(fresh))
    assert '--resume' not in calls[-2][1]
    assert row['train_s'] < 10.0 and row['schedule'] == ''
    assert json.loads((fresh / method.TRAIN_CLOCK).read_text())['earlier'] == 0.0
