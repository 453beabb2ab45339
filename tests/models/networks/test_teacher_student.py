"""Teacher-student parts: the frozen teacher, the student, RD's bottleneck and decoder."""
import pytest
import torch
from mmengine.optim import OptimWrapper

from anomaly_plugin.models.networks import OneClassBottleneck, ReverseDecoder, TeacherStudent
from anomaly_plugin.registry import MODELS

TINY = dict(type='mmpretrain.MobileNetV2', widen_factor=0.25, out_indices=(1, 2, 4))


@pytest.fixture
def teacher_ckpt(tmp_path):
    """A 'pretrained' teacher: a randomly initialised MobileNetV2 whose BatchNorm
    statistics are not the defaults, saved as a checkpoint."""
    torch.manual_seed(1)
    net = MODELS.build(dict(TINY))
    net.init_weights()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': net.state_dict()}, path)
    return str(path), net.state_dict()


def teacher_cfg(checkpoint=None):
    backbone = dict(TINY)
    if checkpoint:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    return dict(type='FeatureExtractor', pool_size=1, backbone=backbone)


def test_student_is_the_teacher_architecture_without_weights(teacher_ckpt):
    path, saved = teacher_ckpt
    pair = MODELS.build(dict(type='TeacherStudent', teacher=teacher_cfg(path)))
    pair.init_weights()
    t_state = pair.teacher.backbone.state_dict()
    s_state = pair.student.state_dict()
    # the same architecture up to the last level; the stages after it are deleted
    assert all(t_state[k].shape == v.shape for k, v in s_state.items())
    assert {k.split('.')[0] for k in t_state} - {k.split('.')[0] for k in s_state} == \
        {'layer6', 'layer7', 'conv2'}
    assert all(torch.equal(t_state[k], saved[k]) for k in saved)  # the teacher is loaded
    weights = [k for k in s_state if k.endswith('conv.weight')]
    assert not any(torch.equal(s_state[k], t_state[k]) for k in weights)  # the student not
    x = torch.randn(2, 3, 64, 64)
    teacher, student = pair(x)
    assert [t.shape for t in teacher] == [s.shape for s in student]
    assert [t.shape[1] for t in teacher] == pair.teacher.level_channels()
    assert not any(t.requires_grad for t in teacher)
    assert all(s.requires_grad for s in student)


def test_training_steps_leave_the_teacher_and_its_statistics_unchanged(teacher_ckpt):
    path, _ = teacher_ckpt
    model = MODELS.build(dict(type='STFPM', teacher_student=dict(type='TeacherStudent',
                                                                  teacher=teacher_cfg(path))))
    model.init_weights()
    before_t = {k: v.clone() for k, v in model.teacher_student.teacher.state_dict().items()}
    before_s = {k: v.clone() for k, v in model.teacher_student.student.state_dict().items()}
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9))
    model.train()
    torch.manual_seed(0)
    losses = []
    for _ in range(3):
        x = torch.randn(4, 3, 64, 64)
        loss = model(x, mode='loss')['loss_stfpm']
        optim.update_params(loss)
        losses.append(float(loss))
    after_t = model.teacher_student.teacher.state_dict()
    assert all(torch.equal(before_t[k], after_t[k]) for k in before_t)  # weights and BN stats
    after_s = model.teacher_student.student.state_dict()
    changed = [k for k in before_s if not torch.equal(before_s[k], after_s[k])]
    assert any(k.endswith('running_mean') for k in changed)  # the student's BN learns
    assert any(k.endswith('conv.weight') for k in changed)
    assert not any(p.requires_grad for p in model.teacher_student.teacher.parameters())


def test_a_channels_last_student_computes_what_the_plain_one_does(teacher_ckpt):
    """channels_last=True: the student's weights and maps are channels-last, its
    outputs, loss and gradients those of the plain student with the same weights (up
    to float rounding), its state dict loads into a plain pair and back."""
    path, _ = teacher_ckpt
    plain = MODELS.build(dict(type='TeacherStudent', teacher=teacher_cfg(path)))
    plain.init_weights()
    cl = MODELS.build(dict(type='TeacherStudent', teacher=teacher_cfg(path), channels_last=True))
    cl.load_state_dict(plain.state_dict())
    conv = next(m for m in cl.student.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()  # the layout did change
    x = torch.randn(2, 3, 64, 64)
    for pair in (plain, cl):
        pair.train()
        pair.zero_grad()
        t, s = pair(x)
        sum((a - b).pow(2).mean() for a, b in zip(t, s)).backward()
    out_plain, out_cl = plain.student_levels(x), cl.student_levels(x)
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in out_cl)
    for a, b in zip(out_plain, out_cl):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    scale = max(float(p.grad.norm()) for p in plain.student.parameters())
    for (name, p), q in zip(plain.student.named_parameters(), cl.student.parameters()):
        # summation order differs between the layouts: rounding-sized differences
        # (a BatchNorm bias followed by another batch-statistics BatchNorm has a
        # gradient of rounding size itself)
        assert float((q.grad - p.grad).norm()) < 1e-4 * scale, name
    back = MODELS.build(dict(type='TeacherStudent', teacher=teacher_cfg(path)))
    back.load_state_dict(cl.state_dict())
    torch.testing.assert_close(back.student_levels(x)[0], out_plain[0], rtol=1e-4, atol=1e-4)


def test_bottleneck_and_decoder_shapes_and_gradients():
    levels = [torch.randn(2, 8, 16, 16), torch.randn(2, 12, 8, 8), torch.randn(2, 24, 4, 4)]
    ocbe = OneClassBottleneck([8, 12, 24], out_channels=32, num_blocks=2)
    code = ocbe(levels)
    assert code.shape == (2, 32, 2, 2)
    dec = ReverseDecoder(32, [8, 12, 24], num_blocks=1)
    outs = dec(code)
    assert [o.shape for o in outs] == [f.shape for f in levels]
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in ocbe.parameters())
    # the predictions are linear: they can be negative, as MobileNetV2's levels are
    assert all((o < 0).any() for o in outs)
    # levels that do not halve exactly (odd input sizes) are resized to the teacher's
    odd = [torch.randn(1, 8, 15, 15), torch.randn(1, 12, 8, 8), torch.randn(1, 24, 4, 4)]
    outs = dec(ocbe(odd), [f.shape[-2:] for f in odd])
    assert [o.shape for o in outs] == [f.shape for f in odd]


def test_reverse_distillation_wires_the_teacher_channels():
    model = MODELS.build(dict(type='ReverseDistillation', teacher=teacher_cfg(),
                              bottleneck=dict(type='OneClassBottleneck', out_channels=16)))
    channels = model.teacher.level_channels()
    assert model.decoder.heads[-1].out_channels == channels[0]
    x = torch.randn(2, 3, 64, 64)
    teacher, student = model.distill(x)
    assert [t.shape for t in teacher] == [s.shape for s in student]
    assert model(x).shape == (2, 1, 64, 64)


def test_registered():
    for cls in (TeacherStudent, OneClassBottleneck, ReverseDecoder):
        assert MODELS.get(cls.__name__) is cls
