"""FrozenPartsHook: frozen parts (weights and BatchNorm statistics) end training as
they began; a change is reported by name."""
from types import SimpleNamespace

import torch
from torch import nn

from anomaly_plugin.engine.hooks import frozen_parts_hook
from anomaly_plugin.engine.hooks.frozen_parts_hook import FrozenPartsHook, frozen_tensors


class Pair(nn.Module):
    """A frozen 'teacher' (conv + BatchNorm) and a trainable 'student'."""

    def __init__(self):
        super().__init__()
        self.teacher = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.student = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        for p in self.teacher.parameters():
            p.requires_grad_(False)


def test_frozen_tensors_are_the_teachers_weights_and_statistics():
    names = set(frozen_tensors(Pair()))
    assert names == {'teacher.0.weight', 'teacher.0.bias', 'teacher.1.weight',
                     'teacher.1.bias', 'teacher.1.running_mean', 'teacher.1.running_var'}


def run(model, change, monkeypatch):
    logged = []
    monkeypatch.setattr(frozen_parts_hook, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw.get('level'))))
    runner = SimpleNamespace(model=model)
    hook = FrozenPartsHook()
    hook.before_train(runner)
    change(model)
    hook.after_train(runner)
    return logged


def test_training_the_student_passes(monkeypatch):
    def train_student(model):
        model.train()
        model.student(torch.randn(2, 3, 8, 8))  # its BatchNorm statistics move
        with torch.no_grad():
            model.student[0].weight.add_(1.0)
    logged = run(Pair(), train_student, monkeypatch)
    assert len(logged) == 1 and logged[0][1] is None
    assert 'the 6 frozen tensors are unchanged by training and identical on 1 rank' in logged[0][0]


def test_a_teacher_whose_statistics_move_is_reported(monkeypatch):
    def teacher_in_train_mode(model):
        model.train()  # nothing keeps this teacher in eval mode
        model.teacher(torch.randn(2, 3, 8, 8))
    logged = run(Pair(), teacher_in_train_mode, monkeypatch)
    msg, level = logged[0]
    assert level is not None and '2 changed during training' in msg
    assert 'teacher.1.running_mean' in msg and 'teacher.1.running_var' in msg


def test_models_without_frozen_parts_are_left_alone(monkeypatch):
    logged = run(nn.Conv2d(3, 4, 3), lambda m: None, monkeypatch)
    assert logged == []
