"""StageClock: own time per stage, nested stages, wrappers undone."""
import pytest

from anomaly_plugin.apis import profiling
from anomaly_plugin.apis.profiling import StageClock


class FakeTime:
    """perf_counter under the test's control."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


class Worker:
    def __init__(self, t):
        self.t = t

    def inner(self):
        self.t.now += 2.0
        return 'inner'

    def outer(self):
        self.t.now += 1.0
        out = self.inner()
        self.t.now += 0.5
        return out


@pytest.fixture
def fake_time(monkeypatch):
    t = FakeTime()
    monkeypatch.setattr(profiling, 'time', t)
    return t


def test_nested_stages_get_their_own_time(fake_time):
    w = Worker(fake_time)
    clock = StageClock()
    clock.wrap(w, 'outer', 'outer stage')
    clock.wrap(w, 'inner', 'inner stage')
    assert w.outer() == 'inner'
    fake_time.now += 3.0  # outside every stage
    w.inner()
    assert clock.seconds == {'outer stage': 1.5, 'inner stage': 4.0}
    assert clock.calls == {'outer stage': 1, 'inner stage': 2}
    rows = {r['stage']: r for r in clock.report(total_s=10.0, images=4)}
    assert rows['other']['seconds'] == pytest.approx(4.5)
    assert rows['inner stage']['share'] == pytest.approx(0.4)
    assert rows['outer stage']['ms_per_image'] == pytest.approx(375.0)
    assert sum(r['share'] for r in rows.values()) == pytest.approx(1.0)


def test_restore_undoes_instance_and_class_wrappers(fake_time):
    w = Worker(fake_time)
    clock = StageClock()
    clock.wrap(w, 'inner', 'a')  # the method comes from the class
    clock.wrap(Worker, 'outer', 'b')  # a class attribute
    w.outer()
    assert set(clock.seconds) == {'a', 'b'}
    clock.restore()
    assert 'inner' not in vars(w) and vars(Worker)['outer'].__name__ == 'outer'
    assert not hasattr(vars(Worker)['outer'], '__wrapped__')
    before = dict(clock.seconds)
    w.outer()
    assert clock.seconds == before  # nothing charged after restore


def test_an_exception_leaves_the_stage():
    clock = StageClock()

    def boom():
        raise RuntimeError('x')

    holder = type('H', (), {})()
    holder.boom = boom
    clock.wrap(holder, 'boom', 'boom')
    with pytest.raises(RuntimeError):
        holder.boom()
    assert clock._stack == [] and clock.calls['boom'] == 1
