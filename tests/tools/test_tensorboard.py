"""tools/train.py and tools/test.py with the visualizer switched to TensorBoard."""
import glob

import pytest
from conftest import AE_CONFIG, make_mvtec, options_to_cli, run_tool, tiny_ae_options

pytest.importorskip('tensorboard')
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

TENSORBOARD = {'visualizer.vis_backends.0.type': 'TensorboardVisBackend'}


def events(work_dir):
    """The event files of the runs in ``work_dir``, read (run folder order)."""
    files = sorted(glob.glob(str(work_dir / '*' / 'vis_data' / 'events.out.tfevents.*')))
    accs = []
    for f in files:
        acc = EventAccumulator(f, size_guidance={'images': 0, 'scalars': 0})
        acc.Reload()
        accs.append(acc)
    return accs


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('tensorboard')
    data = make_mvtec(tmp / 'cat', size=32, n_train=8, n_good=1, n_bad=1)
    work = tmp / 'work'
    opts = dict(tiny_ae_options(data, epochs=1), **TENSORBOARD)
    run_tool(['tools/train.py', AE_CONFIG, '--work-dir', str(work), '--no-validate',
              '--cfg-options', *options_to_cli(opts)])
    return dict(tmp=tmp, data=data, work=work, opts=opts, ckpt=work / 'epoch_1.pth')


def test_training_losses_reach_tensorboard(trained):
    runs = events(trained['work'])
    assert len(runs) == 1
    tags = runs[0].Tags()['scalars']
    assert 'loss' in tags and 'lr' in tags
    losses = runs[0].Scalars('loss')
    assert [s.step for s in losses] == [1, 2]  # 7 training images, batches of 4
    assert all(s.value > 0 for s in losses)
    assert not glob.glob(str(trained['work'] / '*' / 'vis_data' / 'scalars.json'))


def test_test_panels_reach_tensorboard(trained):
    work = trained['tmp'] / 'test'
    run_tool(['tools/test.py', AE_CONFIG, str(trained['ckpt']), '--work-dir', str(work),
              '--visualize', '--cfg-options', *options_to_cli(trained['opts'])])
    runs = events(work)
    assert len(runs) == 1
    assert sorted(runs[0].Tags()['images']) == ['good_000', 'spot_000']
    image = runs[0].Images('spot_000')[0]
    assert (image.height, image.width) == (32 + 20, 4 * 32)
    assert sorted(p.name for p in (work / 'vis').iterdir()) == ['good_000.png',
                                                               'spot_000.png']
