"""SKD: the three terms by hand, the discriminator's own optimiser and update, tiny real runs and exact resume."""
import json
import math

import pytest
import torch

from sdet.checkpoint import load_checkpoint
from sdet.config import load_config
from sdet.engine.trainer import Trainer
from sdet.errors import UserError
from sdet.methods import METHODS
from sdet.methods.skd import Discriminator, gradient_penalty, pair_wise_loss, pool_nodes, two_class_map
from sdet.models.detector import build_detector

from conftest import tiny_overrides
from test_methods_teacher import TEACHER, _batch, _grad, _kl_float64, _method, _no_det_loss, _student, _teacher

SMALL_D = {"d_width": 8, "d_layers": 2}  # unit tests: a cheap discriminator
LOGGED = {"skd_pi", "skd_pa", "skd_ho", "skd_d", "skd_gp"}


@pytest.fixture(scope="module")
def teacher_ckpt(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("skd_teacher")
    Trainer(load_config(None, tiny_overrides(synth_root, out, steps=1) + TEACHER), progress=False).run()
    return out / "best.pt"


def _cfg(synth_root, out, teacher, steps, extra=()):
    overrides = tiny_overrides(synth_root, out, steps=steps) + ["method.name=skd", f"method.teacher={teacher}"]
    return load_config(None, overrides + list(extra))


def _records(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"train"' in line]


# -- the three terms --------------------------------------------------------------------------------------


def test_pool_nodes_gives_about_two_by_two_block_maxima():
    feature = torch.randn(2, 3, 24, 24)
    nodes = pool_nodes(feature, 0.5)
    assert nodes.shape == (2, 3, 2, 2)
    assert torch.equal(nodes, feature.reshape(2, 3, 2, 12, 2, 12).amax(dim=(3, 5)))
    assert pool_nodes(torch.randn(1, 1, 128, 128), 0.5).shape[-2:] == (2, 2)
    # kernel int(0.5 * size) = (12, 13), ceil mode keeps the remainder row: 3 x 2 nodes
    assert pool_nodes(torch.randn(1, 1, 25, 26), 0.5).shape[-2:] == (3, 2)


def test_pair_wise_loss_equals_a_hand_computation():
    # student image 0: four constant 2x2 blocks, node vectors (1, 0), (0, 1), (1, 1), (-1, 0);
    # teacher image 0: one direction everywhere (3 channels: counts may differ), so a^T = 1 for every pair;
    # image 1: the teacher's nodes equal the student's, so it adds nothing but the 1/N
    nodes = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (-1.0, 0.0)]
    student = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    for k, (a, b) in enumerate(nodes):
        i, j = divmod(k, 2)
        student[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = torch.tensor([a, b], dtype=torch.float64)[:, None, None]
    teacher = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    teacher[0, 2] = 2.0
    teacher[1, :2] = student[1]

    def cosine(u, v):
        return (u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v))

    squared = sum((1.0 - cosine(u, v)) ** 2 for u in nodes for v in nodes)
    expected = squared / 4**2 / 2
    assert pair_wise_loss(student, teacher, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_pixel_term_is_the_soft_target_formula_and_terms_are_weighted():
    student, teacher = _student(), _teacher()
    method = _method("skd", student, teacher, det_loss=_no_det_loss, lambda_pi=3.0, lambda_pa=2.0, **SMALL_D)
    batch = _batch()
    out = student(batch["image"])
    terms = method.losses(out, batch, 0)
    assert set(terms) == {"skd_pi", "skd_pa", "skd_ho"}
    t_out = teacher(batch["image"])
    expected = 3.0 * _kl_float64(t_out.logits["prob"], out.logits["prob"], 1.0).mean()
    assert terms["skd_pi"].item() == pytest.approx(expected.item(), rel=1e-5)
    pair = 2.0 * pair_wise_loss(out.features.fused, t_out.features.fused, 0.5)
    assert terms["skd_pa"].item() == pytest.approx(pair.item(), rel=1e-5) and pair.item() > 0
    q = two_class_map(out.logits["prob"])
    assert q.shape[1] == 2 and torch.allclose(q.sum(1), torch.ones(()))


def test_gradient_penalty_is_finite_positive_and_trains_d():
    torch.manual_seed(0)
    for condition in (True, False):
        d = Discriminator(5 if condition else 2, 8, 2, spectral_norm=True)
        q_s, q_t = two_class_map(torch.randn(2, 1, 32, 32)), two_class_map(3 * torch.randn(2, 1, 32, 32))
        image = torch.randn(2, 3, 32, 32) if condition else None
        gp = gradient_penalty(d, q_s, q_t, image)
        assert math.isfinite(gp.item()) and gp.item() > 0
        gp.backward()  # double backward into D's weights
        grads = [p.grad for p in d.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_student_gets_every_term_the_teacher_none_and_d_drops_the_student_gradient():
    student, teacher = _student(), _teacher()
    teacher.requires_grad_(True)  # only no_grad keeps gradients out of it now
    batch = _batch()
    out = student(batch["image"])
    methods = []
    for _ in range(2):  # two identical methods (same seed); only the first lets the student term reach D
        torch.manual_seed(5)
        methods.append(_method("skd", student, teacher, det_loss=_no_det_loss, **SMALL_D))
    terms = methods[0].losses(out, batch, 0)
    methods[1].losses(out, batch, 0)  # (each D forward also moves its spectral-norm vectors: once each)
    for name in ("skd_pi", "skd_pa", "skd_ho"):
        student.zero_grad(set_to_none=True)
        terms[name].backward(retain_graph=True)
        assert _grad(student.backbone) > 0, name
        assert all(p.grad is None for p in teacher.parameters())
    assert _grad(methods[0].discriminator) > 0  # the student term left a gradient on D ...
    updated = []
    for method in methods:
        torch.manual_seed(7)  # the same penalty points for both
        logged = method.after_step(0)
        assert set(logged) == {"skd_d", "skd_gp"} and all(math.isfinite(v) for v in logged.values())
        updated.append(method.discriminator.state_dict())
    for key, value in updated[0].items():  # ... which the D step discarded
        assert torch.equal(value, updated[1][key]), key
    assert methods[0].after_step(1) == {}  # nothing stored: no second step


def test_east_conditions_d_on_the_image_at_the_score_map_resolution():
    student, teacher = _student("east"), _teacher("east")
    method = _method("skd", student, teacher, det_loss=_no_det_loss, **SMALL_D)
    batch = _batch()
    terms = method(batch, 0)
    q_s, _, image = method._pending
    assert q_s.shape[-2:] == image.shape[-2:] == (16, 16) and image.shape[1] == 3
    sum(terms.values()).backward()
    assert set(method.after_step(0)) == {"skd_d", "skd_gp"}


BAD_OPTIONS = [("pool_scale", 0.0), ("pair_feature", "P3"), ("lambda_d", -1.0), ("d_layers", 0), ("d_momentum", 1.0),
               ("d_lr", 0.0)]


@pytest.mark.parametrize("option,value", BAD_OPTIONS)
def test_bad_options_are_config_errors(option, value):
    with pytest.raises(UserError, match=f"method.options.*{option}"):
        _method("skd", _student(), _teacher(), **{option: value})


def test_every_other_method_keeps_the_default_hooks():
    student, teacher = _student(), _teacher()
    for name, cls in METHODS.items():
        if name == "skd":
            continue
        method = _method(name, student, teacher if cls.needs_teacher else None)
        assert method.extra_state() == {} and method.after_step(0) == {}
        assert list(method.optimized_parameters()) == list(method.parameters())


# -- tiny real runs ---------------------------------------------------------------------------------------


def test_tiny_run_trains_d_apart_and_keeps_inference_weights_baseline(synth_root, tmp_path, teacher_ckpt):
    cfg = _cfg(synth_root, tmp_path / "s", teacher_ckpt, steps=2)
    fresh = Trainer(cfg, progress=False)
    fresh._build()  # seeded: the same initial D as the run below
    initial_d = {k: v.clone() for k, v in fresh.method.discriminator.state_dict().items()}
    trainer = Trainer(cfg, progress=False)
    trainer.run()

    d_params = {id(p) for p in trainer.method.discriminator.parameters()}
    in_optimizer = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    assert not d_params & {id(p) for p in in_optimizer}
    assert len(in_optimizer) == len(list(trainer.detector.parameters()))
    d_now = trainer.method.discriminator.state_dict()
    assert any(not torch.equal(v, d_now[k]) for k, v in initial_d.items() if "original" in k or "bias" in k)
    lr = trainer.method.d_optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(4e-4 * (1 - 1 / 2) ** 0.9)  # poly at the last step (1 of 2)

    saved = load_checkpoint(teacher_ckpt)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in trainer.teacher.state_dict().items())
    assert not any(p.grad is not None for p in trainer.teacher.parameters())

    records = _records(tmp_path / "s")
    assert [r["step"] for r in records] == [1, 2]
    skip = {"event", "step", "lr", "data_wait_share", "sec_per_step", "loss", "skd_d", "skd_gp"}
    for r in records:
        assert LOGGED <= set(r) and "prob_bce" in r and r["skd_gp"] > 0
        assert r["loss"] == pytest.approx(sum(v for k, v in r.items() if k not in skip), rel=1e-5)  # D's loss apart

    baseline = {k: tuple(v.shape) for k, v in build_detector(cfg.model).state_dict().items()}
    last, best = load_checkpoint(tmp_path / "s" / "last.pt"), load_checkpoint(tmp_path / "s" / "best.pt")
    for ckpt in (last, best):
        assert {k: tuple(v.shape) for k, v in ckpt["model"].items()} == baseline
    assert "method_extra" not in best and {k.split(".")[0] for k in last["method"]} == {"discriminator"}
    assert last["method_extra"]["d_optimizer"]["state"]  # momentum buffers


def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(synth_root, tmp_path, teacher_ckpt):
    extra = ["method.options.d_width=16"]
    Trainer(_cfg(synth_root, tmp_path / "full", teacher_ckpt, 3, extra), progress=False).run()
    Trainer(_cfg(synth_root, tmp_path / "part", teacher_ckpt, 3, extra), progress=False, stop_after=1).run()
    assert load_checkpoint(tmp_path / "part" / "last.pt")["step"] == 1
    Trainer(_cfg(synth_root, tmp_path / "part", teacher_ckpt, 3, extra + ["train.resume=true"]), progress=False).run()
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "part" / "last.pt")
    for part in ("model", "method"):  # student weights; D weights and spectral-norm vectors
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    momentum_a, momentum_b = a["method_extra"]["d_optimizer"]["state"], b["method_extra"]["d_optimizer"]["state"]
    assert momentum_a.keys() == momentum_b.keys() and momentum_a
    assert all(torch.equal(momentum_a[i]["momentum_buffer"], momentum_b[i]["momentum_buffer"]) for i in momentum_a)
    keys = sorted(LOGGED | {"loss"})
    full = [[r[k] for k in keys] for r in _records(tmp_path / "full")]
    assert [[r[k] for k in keys] for r in _records(tmp_path / "part")] == full
