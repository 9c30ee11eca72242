"""Teacher-based methods (ST, FitNets, KA): the frozen teacher, its errors, each loss, and tiny real runs."""
import copy
import json
import math

import pytest
import torch

from sdet.checkpoint import load_checkpoint
from sdet.config import BackboneConfig, LossConfig, MethodConfig, ModelConfig, NeckConfig, load_config
from sdet.engine.trainer import Trainer
from sdet.errors import UserError
from sdet.detectors.db.loss import DBLoss
from sdet.methods import MethodContext, build_method
from sdet.methods.ka import adaptation_loss, affinity, affinity_distance
from sdet.methods.soft_target import soft_target_loss
from sdet.models.detector import build_detector

from conftest import tiny_overrides

# the teacher differs from the student in backbone and width, so every channel mismatch is exercised
TEACHER = ["model.backbone.name=resnet18", "model.neck.inner_channels=48"]


@pytest.fixture(scope="session")
def teacher_run(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    Trainer(load_config(None, tiny_overrides(synth_root, out, steps=1) + TEACHER), progress=False).run()
    return out


def _cfg(synth_root, out, method, teacher, steps=2, extra=()):
    overrides = tiny_overrides(synth_root, out, steps=steps) + [f"method.name={method}", f"method.teacher={teacher}"]
    return load_config(None, overrides + list(extra))


def _records(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"train"' in line]


# -- the frozen teacher in real runs ----------------------------------------------------------------

RUNS = {  # method -> (extra overrides, teacher checkpoint, the method's own log terms, its module names)
    "soft_target": (["method.options.distil_binary=true"], "best.pt", {"soft_target", "soft_target_binary"}, set()),
    "fitnets": (["method.options.regressor_kernel=3"], "best.pt", {"hint"}, {"regressor"}),
    "ka": (["method.options.ae_steps=1"], "last.pt", {"ka_ae", "ka_adapt", "ka_aff"},
           {"encoder", "decoder", "adapter", "affinity_adapter"}),
}


@pytest.mark.parametrize("method", sorted(RUNS))
def test_tiny_run_frozen_teacher_and_student_only_checkpoints(synth_root, tmp_path, teacher_run, method):
    extra, teacher_file, log_terms, modules = RUNS[method]
    teacher_path = teacher_run / teacher_file
    cfg = _cfg(synth_root, tmp_path / "s", method, teacher_path, extra=extra)
    trainer = Trainer(cfg, progress=False)
    trainer.run()

    teacher = trainer.teacher
    assert teacher is trainer.method.teacher and teacher is not trainer.detector
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad or p.grad is not None for p in teacher.parameters())
    conv = next(p for p in teacher.parameters() if p.dim() == 4 and p.shape[-1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)  # follows the student's layout on CPU
    saved = load_checkpoint(teacher_path)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())  # weights and BN stats untouched

    records = _records(tmp_path / "s")
    assert [r["step"] for r in records] == [1, 2]
    assert all(log_terms <= set(r) and "prob_bce" in r for r in records)
    if method == "ka":  # stage 1 at step 0, stage 2 at step 1
        assert records[0]["ka_ae"] > 0 and records[0]["ka_adapt"] == 0 and records[0]["ka_aff"] == 0
        assert records[1]["ka_ae"] == 0 and records[1]["ka_adapt"] > 0 and records[1]["ka_aff"] > 0

    baseline = {k: tuple(v.shape) for k, v in build_detector(cfg.model).state_dict().items()}
    last, best = load_checkpoint(tmp_path / "s" / "last.pt"), load_checkpoint(tmp_path / "s" / "best.pt")
    for ckpt in (last, best):
        assert {k: tuple(v.shape) for k, v in ckpt["model"].items()} == baseline
    assert best["kind"] == "inference" and set(best) == {"format", "version", "kind", "config", "model", "step", "metrics"}
    assert {k.split(".")[0] for k in last["method"]} == modules
    n_student = len(list(trainer.detector.parameters())) + len(list(trainer.method.parameters()))
    assert sum(len(g["params"]) for g in last["optimizer"]["param_groups"]) == n_student
    assert best["config"]["method"]["teacher"] == str(teacher_path)  # the path, never the weights


def test_resume_with_a_teacher_equals_the_uninterrupted_run(synth_root, tmp_path, teacher_run):
    """KA across its stage switch: the teacher is reloaded from the config path, E stays frozen."""
    teacher, extra = teacher_run / "best.pt", ["method.options.ae_steps=1"]
    Trainer(_cfg(synth_root, tmp_path / "full", "ka", teacher, steps=3, extra=extra), progress=False).run()
    Trainer(_cfg(synth_root, tmp_path / "part", "ka", teacher, steps=3, extra=extra), progress=False, stop_after=1).run()
    assert load_checkpoint(tmp_path / "part" / "last.pt")["step"] == 1
    resumed = _cfg(synth_root, tmp_path / "part", "ka", teacher, steps=3, extra=extra + ["train.resume=true"])
    Trainer(resumed, progress=False).run()
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "part" / "last.pt")
    for part in ("model", "method"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    losses = [[r["ka_ae"], r["ka_adapt"], r["ka_aff"], r["loss"]] for r in _records(tmp_path / "full")]
    assert [[r["ka_ae"], r["ka_adapt"], r["ka_aff"], r["loss"]] for r in _records(tmp_path / "part")] == losses


# -- user errors ------------------------------------------------------------------------------------


def test_missing_and_unreadable_teacher_name_the_file(synth_root, tmp_path):
    with pytest.raises(UserError, match=r"nope\.pt: method\.teacher: checkpoint not found"):
        Trainer(_cfg(synth_root, tmp_path / "a", "soft_target", tmp_path / "nope.pt"), progress=False).run()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"junk\.pt: method\.teacher: not a readable sdet checkpoint"):
        Trainer(_cfg(synth_root, tmp_path / "b", "fitnets", junk), progress=False).run()


def test_teacher_of_another_model_type_is_refused(synth_root, tmp_path, teacher_run):
    cfg = _cfg(synth_root, tmp_path / "east", "ka", teacher_run / "best.pt", extra=["model.type=east"])
    with pytest.raises(UserError, match=r"best\.pt: method\.teacher is a 'db' detector but the student .* is 'east'"):
        Trainer(cfg, progress=False).run()


@pytest.mark.parametrize("method", ["soft_target", "fitnets", "ka"])
def test_teacher_method_without_teacher_is_refused(synth_root, tmp_path, method):
    with pytest.raises(UserError, match=f"method '{method}' needs a teacher: set method.teacher"):
        Trainer(_cfg(synth_root, tmp_path / "x", method, ""), progress=False).run()


def test_teacher_given_to_a_method_without_one_is_refused_before_loading(synth_root, tmp_path):
    # the path does not exist: the method's refusal comes first, nothing is loaded
    with pytest.raises(UserError, match=r"method 'sdet' does not use a teacher; remove method.teacher \('.*ghost\.pt'\)"):
        Trainer(_cfg(synth_root, tmp_path / "x", "sdet", tmp_path / "ghost.pt"), progress=False).run()
    student = _student()
    with pytest.raises(UserError, match="does not use a teacher"):  # also when only the context carries one
        build_method(MethodConfig("baseline"), MethodContext(student, DBLoss(LossConfig()), 4, _teacher()))


# -- units: tiny detectors and a synthetic batch --------------------------------------------------------


def _student(kind="db"):
    torch.manual_seed(0)
    model = ModelConfig(type=kind, backbone=BackboneConfig(name="mobilenet_v3_small", width_mult=0.35),
                        neck=NeckConfig(inner_channels=32))
    return build_detector(model).train()


def _teacher(kind="db"):
    torch.manual_seed(1)
    model = ModelConfig(type=kind, backbone=BackboneConfig(name="resnet18"), neck=NeckConfig(inner_channels=48))
    return build_detector(model).eval().requires_grad_(False)


def _batch(size=64):
    gt = torch.zeros(2, size, size)
    gt[:, 20:40, 10:50] = 1
    return {"image": torch.randn(2, 3, size, size), "shrink_map": gt, "shrink_mask": torch.ones_like(gt),
            "threshold_map": torch.full_like(gt, 0.5), "threshold_mask": torch.ones_like(gt), "text_mask": gt.clone()}


def _method(name, student, teacher, total_steps=10, det_loss=None, **options):
    ctx = MethodContext(student, det_loss or DBLoss(LossConfig()), total_steps, teacher)
    return build_method(MethodConfig(name, options), ctx)


def _grad(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def _no_det_loss(logits, batch):
    return {}


def _kl_float64(z_t, z_s, tau):
    p, q = torch.sigmoid(z_t.double() / tau), torch.sigmoid(z_s.double() / tau)
    return p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_soft_target_loss_equals_the_float64_binary_kl(tau):
    torch.manual_seed(2)
    z_t, z_s = 3 * torch.randn(2, 1, 5, 7), 3 * torch.randn(2, 1, 5, 7)
    expected = tau**2 * _kl_float64(z_t, z_s, tau).mean()
    assert soft_target_loss(z_t, z_s, tau).item() == pytest.approx(expected.item(), rel=1e-5)
    big = torch.tensor([-60.0, -20.0, 20.0, 60.0], requires_grad=True)
    value = soft_target_loss(big.detach().flip(0), big, tau)  # saturated maps: finite value and gradient
    value.backward()
    assert math.isfinite(value.item()) and torch.isfinite(big.grad).all()


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_soft_target_term_on_detector_maps(tau):
    student, teacher = _student(), _teacher()
    method = _method("soft_target", student, teacher, tau=tau, lambda_st=3.0, distil_binary=True, lambda_binary=0.5)
    batch = _batch()
    out = student(batch["image"])
    terms = method.losses(out, batch, 0)
    z_t = teacher(batch["image"]).logits["prob"]
    assert terms["soft_target"].item() == pytest.approx(3.0 * tau**2 * _kl_float64(z_t, out.logits["prob"], tau).mean().item(), rel=1e-5)
    head = teacher.head  # the teacher's binary map, computed by hand from its two branches
    b_t = head.k * (torch.sigmoid(z_t) - torch.sigmoid(head.thresh(teacher(batch["image"]).features.fused)))
    expected = 0.5 * tau**2 * _kl_float64(b_t, out.logits["binary"], tau).mean()
    assert terms["soft_target_binary"].item() == pytest.approx(expected.item(), rel=1e-4)
    assert {"prob_bce", "binary_dice", "thresh_l1"} <= set(terms)


def test_soft_target_is_zero_when_the_teacher_is_the_student():
    student = _student().eval()
    method = _method("soft_target", student, copy.deepcopy(student).requires_grad_(False), det_loss=_no_det_loss, tau=2.0)
    batch = _batch()
    assert abs(method.losses(student(batch["image"]), batch, 0)["soft_target"].item()) < 1e-6


def test_soft_target_on_east_uses_the_score_map_and_refuses_binary():
    student, teacher = _student("east"), _teacher("east")
    method = _method("soft_target", student, teacher, det_loss=_no_det_loss)
    batch = _batch()
    out = student(batch["image"])
    z_t = teacher(batch["image"]).logits["score"]
    expected = 10.0 * _kl_float64(z_t, out.logits["score"], 1.0).mean()
    assert method.losses(out, batch, 0)["soft_target"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(UserError, match="distil_binary needs a DB detector"):
        _method("soft_target", student, teacher, distil_binary=True)


@pytest.mark.parametrize("hint,stage", [("fused", None), ("C4", None), ("fused", "warm-up"), ("fused", "kd")])
def test_fitnets_gradients_reach_regressor_and_student_never_the_teacher(hint, stage):
    student, teacher = _student(), _teacher()
    teacher.requires_grad_(True)  # only no_grad keeps gradients out of it now
    fraction = 0.0 if stage is None else 0.5
    method = _method("fitnets", student, teacher, total_steps=4, hint=hint, hint_only_fraction=fraction)
    step = 2 if stage == "kd" else 0
    batch = _batch()
    terms = method(batch, step)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert _grad(student.backbone) > 0
    regressor = method.regressor[0]
    assert (regressor.in_channels, regressor.out_channels) == ((32, 48) if hint == "fused" else (student.backbone.out_channels[2], 256))
    if stage == "warm-up":  # hint only: detector terms are exact zeros, the head gets nothing
        assert all(terms[k].item() == 0 for k in ("prob_bce", "binary_dice", "thresh_l1", "soft_target"))
        assert all(p.grad is None for p in student.head.parameters())
        assert _grad(method.regressor) > 0 and terms["hint"].item() > 0
    elif stage == "kd":  # after the warm-up: L_det + soft targets, the regressor is done
        assert terms["hint"].item() == 0 and terms["soft_target"].item() > 0
        assert _grad(method.regressor) == 0 and _grad(student.head) > 0
    else:
        assert _grad(method.regressor) > 0 and _grad(student.head) > 0 and "soft_target" not in terms
        # the fused hint is signed (the FPN's convs are linear): no ReLU; a ResNet's C4 ends in one
        assert isinstance(method.regressor[-1], torch.nn.ReLU) == (hint == "C4")


def test_fitnets_hint_loss_is_the_mean_squared_regression_error():
    student, teacher = _student(), _teacher()
    method = _method("fitnets", student, teacher, det_loss=_no_det_loss, lambda_hint=2.0)
    batch = _batch()
    out = student(batch["image"])
    u_t = teacher(batch["image"]).features.fused
    expected = 2.0 * ((method.regressor(out.features.fused) - u_t) ** 2).mean()
    assert method.losses(out, batch, 0)["hint"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_ka_stage_switch_and_frozen_encoder():
    student, teacher = _student(), _teacher()
    method = _method("ka", student, teacher, ae_steps=2)
    batch = _batch()
    terms = method(batch, 1)  # stage 1: autoencoder only, the student gets L_det
    assert terms["ka_ae"].item() > 0 and terms["ka_adapt"].item() == 0 and terms["ka_aff"].item() == 0
    sum(terms.values()).backward()
    assert _grad(method.encoder) > 0 and _grad(method.decoder) > 0
    assert all(p.grad is None for m in (method.adapter, method.affinity_adapter) for p in m.parameters())
    assert all(p.grad is None for p in teacher.parameters())

    student.zero_grad(set_to_none=True)
    method.zero_grad(set_to_none=True)
    encoder_state = copy.deepcopy(method.encoder.state_dict())
    terms = method(batch, 2)  # stage 2: E frozen, adaptation and affinity on
    assert terms["ka_ae"].item() == 0 and terms["ka_adapt"].item() > 0 and terms["ka_aff"].item() > 0
    sum(terms.values()).backward()
    assert all(p.grad is None for m in (method.encoder, method.decoder) for p in m.parameters())
    assert not method.encoder.training
    assert all(torch.equal(v, encoder_state[k]) for k, v in method.encoder.state_dict().items())  # BN stats too
    assert _grad(method.adapter) > 0 and _grad(method.affinity_adapter) > 0 and _grad(student.backbone) > 0
    assert method.adapter[1][0].out_channels == method.encoder[1][0].out_channels == 24  # half the teacher's 48


def test_ka_default_autoencoder_stage_is_three_percent_of_the_steps():
    assert _method("ka", _student(), _teacher(), total_steps=1000).ae_steps == 30


def test_affinity_matrix_and_losses_by_hand():
    # three positions (1 x 3 map) with 2-channel vectors (1, 0), (0, 1), (1, 1)
    feature = torch.tensor([[[[1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]]]])
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1.0, 0.0, r], [0.0, 1.0, r], [r, r, 1.0]])
    a = affinity(feature)
    assert a.shape == (1, 3, 3) and torch.allclose(a[0], expected, atol=1e-6)
    eye = torch.eye(3)[None]  # rows of A - I: (0, 0, r), (0, 0, r), (r, r, 0)
    assert affinity_distance(a, eye, "rows").item() == pytest.approx((2 * r + 1) / 3, rel=1e-6)
    assert affinity_distance(a, eye, "frobenius").item() == pytest.approx(math.sqrt(4 * r * r) / 3, rel=1e-6)
    # adaptation: directions only; (3, 4) and (4, 3) normalise to (.6, .8) and (.8, .6)
    s, t = torch.tensor([[[[3.0, 4.0]]]]), torch.tensor([[[[40.0, 30.0]]]])
    assert adaptation_loss(s, t).item() == pytest.approx(0.2, rel=1e-6)
