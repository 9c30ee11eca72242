"""Teacher-free comparison methods DSN, SAD and BYOT (SD): values, schedules, gradient routing."""
import json
import math
from pathlib import Path

import pytest
import torch

from sdet.config import BackboneConfig, LossConfig, MethodConfig, ModelConfig, NeckConfig, load_config
from sdet.detectors.db.loss import DBLoss
from sdet.detectors.east.loss import EASTLoss
from sdet.engine.trainer import Trainer
from sdet.errors import UserError
from sdet.methods import MethodContext, build_method
from sdet.methods.dsn import companion_weight
from sdet.methods.sad import attention_distillation_loss, attention_map, spatial_softmax
from sdet.models.detector import build_detector
from sdet.ops.entropy import binary_kl_from_logits

from conftest import tiny_overrides

DB_TERMS = {"prob_bce", "binary_dice", "thresh_l1"}
EAST_TERMS = {"score_balanced_bce", "geo_aabb", "geo_theta"}
EXPECTED_TERMS = {
    "dsn": {"dsn_P0", "dsn_P1", "dsn_P2", "dsn_P3"},
    "sad": {"sad"},
    "byot": {f"byot_{s}_{t}" for s in ("C2", "C3", "C4") for t in ("text", "kl", "feat")},
}


def _model_cfg(kind="db"):
    return ModelConfig(type=kind, backbone=BackboneConfig(name="mobilenet_v3_small", width_mult=0.35), neck=NeckConfig(inner_channels=32))


def _batch(kind="db", size=64):
    gt = torch.zeros(2, size, size)
    gt[:, 20:40, 10:50] = 1
    if kind == "db":
        return {
            "image": torch.randn(2, 3, size, size), "shrink_map": gt, "shrink_mask": torch.ones_like(gt),
            "threshold_map": torch.full_like(gt, 0.5), "threshold_mask": torch.ones_like(gt),
        }
    score = gt[:, ::4, ::4].clone()
    geo = torch.full((2, 5, size // 4, size // 4), 8.0)
    geo[:, 4] = 0.0
    return {"image": torch.randn(2, 3, size, size), "score_map": score, "training_mask": torch.ones_like(score), "geo_map": geo}


def _setup(name, kind="db", total_steps=10, **opts):
    torch.manual_seed(0)
    det = build_detector(_model_cfg(kind)).train()
    loss = DBLoss(LossConfig()) if kind == "db" else EASTLoss(LossConfig())
    method = build_method(MethodConfig(name, opts), MethodContext(det, loss, total_steps=total_steps))
    return det, method, _batch(kind)


def _grad_norm(params):
    return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)


# -- every method: terms, finiteness, inference footprint ---------------------------------------


@pytest.mark.parametrize("kind", ["db", "east"])
@pytest.mark.parametrize("name", ["dsn", "sad", "byot"])
def test_terms_named_finite_and_trainable(name, kind):
    det, method, batch = _setup(name, kind, total_steps=3)  # SAD starts at 2/3 of 3 = step 2; DSN weight 0.4/3
    terms = method(batch, step=2)
    assert set(terms) == (DB_TERMS if kind == "db" else EAST_TERMS) | EXPECTED_TERMS[name]
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())
    sum(terms.values()).backward()
    assert _grad_norm(det.backbone.parameters()) > 0
    if name == "sad":
        assert terms["sad"].item() > 0 and not list(method.parameters())  # no trainable parts
    else:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters() if p.dim() > 1)


@pytest.mark.parametrize("name", ["dsn", "sad", "byot"])
def test_inference_state_dict_identical_to_baseline(name):
    base = build_detector(_model_cfg()).state_dict()
    det, method, _ = _setup(name)
    state = det.state_dict()
    assert list(state) == list(base) and all(state[k].shape == base[k].shape for k in state)
    assert not any(k.startswith(("backbone", "neck", "head.")) for k in method.state_dict())
    assert bool(method.state_dict()) == (name != "sad")


# -- the shared binary KL -----------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_binary_kl_matches_float64_formula(tau):
    target = torch.tensor([0.0, 2.0, -3.0, 4.0, -1.5, 0.7])
    logit = torch.tensor([1.0, 2.0, 3.0, -4.0, 0.5, -2.0])
    p = torch.sigmoid(target.double() / tau)
    q = torch.sigmoid(logit.double() / tau)
    expected = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    got = binary_kl_from_logits(target, logit, tau)
    assert got.shape == target.shape  # per pixel, not reduced
    torch.testing.assert_close(got.double(), expected, atol=1e-6, rtol=1e-5)
    assert abs(got[1].item()) < 1e-6  # equal maps: zero


def test_binary_kl_stable_for_extreme_and_half_logits():
    target = torch.tensor([60.0, -60.0, 1e4, 0.0])
    logit = torch.tensor([-60.0, 60.0, -1e4, 1e4], requires_grad=True)
    kl = binary_kl_from_logits(target, logit, 1.0)
    assert torch.isfinite(kl).all() and kl[0].item() == pytest.approx(60.0, rel=1e-4)
    assert kl[3].item() == pytest.approx(5000.0 - math.log(2.0), rel=1e-6)  # p = 1/2, q = 1: (log 1/2 + 1e4) / 2 + log(1/2) / 2
    kl.sum().backward()
    torch.testing.assert_close(logit.grad, torch.sigmoid(logit.detach()) - torch.sigmoid(target))  # (q - p) / tau
    half = binary_kl_from_logits(target.half(), logit.detach().half(), 2.0)
    assert torch.isfinite(half).all()


# -- DSN ----------------------------------------------------------------------------------------


def test_dsn_alpha_schedule():
    assert companion_weight(0.4, 0, 100) == pytest.approx(0.4)
    assert companion_weight(0.4, 50, 100) == pytest.approx(0.2)
    assert companion_weight(0.4, 100, 100) == 0.0 and companion_weight(0.4, 150, 100) == 0.0
    assert companion_weight(0.4, 50, 100, decay=False) == pytest.approx(0.4)


@pytest.mark.parametrize("kind", ["db", "east"])
def test_dsn_terms_are_weighted_companion_text_losses(kind):
    det, method, batch = _setup("dsn", kind, total_steps=10, levels=["P1", "P3"])
    out = det(batch["image"])
    logits = method.companion_logits(out)
    main = out.logits[det.text_key]
    assert set(logits) == {"P1", "P3"} and all(z.shape == main.shape for z in logits.values())
    raw = {k: method.ctx.det_loss.text_loss(z, batch).item() for k, z in logits.items()}
    for step, weight in [(0, 0.4), (5, 0.2), (10, 0.0)]:
        terms = method.losses(out, batch, step)
        assert set(terms) - (DB_TERMS | EAST_TERMS) == {"dsn_P1", "dsn_P3"}
        for k in raw:
            assert terms[f"dsn_{k}"].item() == pytest.approx(weight * raw[k], rel=1e-5, abs=1e-12)


def test_dsn_gamma_hinge_drops_a_converged_companion():
    det, method, batch = _setup("dsn", gamma=1e6)  # every companion loss is below gamma
    terms = method(batch, step=0)
    assert terms["dsn_P0"].item() == 0.0
    sum(terms.values()).backward()
    assert _grad_norm(method.parameters()) == 0.0
    det, method, batch = _setup("dsn", gamma=0.01, levels=["P3"])  # above gamma: alpha * (loss - gamma)
    out = det(batch["image"])
    raw = method.ctx.det_loss.text_loss(method.companion_logits(out)["P3"], batch).item()
    assert method.losses(out, batch, 0)["dsn_P3"].item() == pytest.approx(0.4 * (raw - 0.01), rel=1e-5)


# -- SAD ----------------------------------------------------------------------------------------


def _softmax64(g):
    e = torch.exp(g - g.max())
    return e / e.sum()


def test_sad_attention_map_and_loss_by_hand():
    shallow = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]], [[0.0, 1.0], [-1.0, 3.0]]]])  # (1, 2, 2, 2)
    deep = torch.tensor([[[[2.0, 0.0], [1.0, -1.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, -1.0], [1.0, 1.0]]]])
    g_shallow = torch.tensor([[1.0, 5.0], [1.25, 9.0]], dtype=torch.float64)  # sum of squares over channels
    g_deep = torch.tensor([[5.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(attention_map(shallow)[0, 0].double(), g_shallow)
    torch.testing.assert_close(attention_map(shallow, p=1.0)[0, 0].double(), torch.tensor([[1.0, 3.0], [1.5, 3.0]], dtype=torch.float64))
    torch.testing.assert_close(spatial_softmax(attention_map(shallow))[0, 0].double(), _softmax64(g_shallow), atol=1e-7, rtol=1e-6)
    expected = ((_softmax64(g_shallow) - _softmax64(g_deep)) ** 2).mean()
    assert attention_distillation_loss(shallow, deep).item() == pytest.approx(expected.item(), rel=1e-5)


def test_sad_deeper_map_is_bilinearly_upsampled_before_softmax():
    shallow = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    deep = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]]]], dtype=torch.float64)  # G = [[1, 4], [0, 9]]
    up = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]], dtype=torch.float64)  # 2 -> 4, half-pixel
    g_deep = up @ torch.tensor([[1.0, 4.0], [0.0, 9.0]], dtype=torch.float64) @ up.T
    g_shallow = (shallow[0] ** 2).sum(0)
    expected = ((_softmax64(g_shallow) - _softmax64(g_deep)) ** 2).mean()
    assert attention_distillation_loss(shallow, deep).item() == pytest.approx(expected.item(), rel=1e-9)


def test_sad_start_step_exact_zero_then_positive():
    det, method, batch = _setup("sad", total_steps=9)  # default: 2/3 of 9 = step 6
    assert method.first_step == 6
    before = method(batch, step=5)["sad"]
    assert before.item() == 0.0 and not before.requires_grad
    assert method(batch, step=6)["sad"].item() > 0.0
    _, method, _ = _setup("sad", total_steps=9, start_step=2)
    assert method.first_step == 2


@pytest.mark.parametrize("detach", [False, True])
def test_sad_detach_option_controls_target_gradient(detach):
    _, method, _ = _setup("sad", detach_target=detach)
    stages = [torch.randn(1, c, s, s, requires_grad=True) for c, s in [(3, 16), (4, 8), (5, 4), (6, 2)]]
    method.distill_loss(stages).backward()
    assert stages[0].grad.abs().sum() > 0  # the shallowest is only ever a student
    deepest = 0.0 if stages[3].grad is None else stages[3].grad.abs().sum().item()
    assert (deepest == 0.0) == detach  # the deepest is only ever a target


# -- BYOT ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["db", "east"])
def test_byot_shapes_and_kl_term_value(kind):
    det, method, batch = _setup("byot", kind, tau=2.0, alpha=0.3, lam=0.5)
    out = det(batch["image"])
    shallow = method.shallow_outputs(out)
    main = out.logits[det.text_key].detach().double()
    terms = method.losses(out, batch, 0)
    for name, (feature, logit) in shallow.items():
        assert feature.shape == out.features.fused.shape and logit.shape == main.shape
        p, q = torch.sigmoid(main / 2.0), torch.sigmoid(logit.detach().double() / 2.0)
        kl = (p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))).mean()
        assert terms[f"byot_{name}_kl"].item() == pytest.approx(0.3 * 4.0 * kl.item(), rel=1e-4)
        feat = ((feature.detach() - out.features.fused.detach()) ** 2).mean()
        assert terms[f"byot_{name}_feat"].item() == pytest.approx(0.5 * feat.item(), rel=1e-5)
        text = method.ctx.det_loss.text_loss(logit, batch)
        assert terms[f"byot_{name}_text"].item() == pytest.approx(0.7 * text.item(), rel=1e-5)


def test_byot_distillation_gradient_skips_main_head_and_reaches_shallow_layers():
    det, method, batch = _setup("byot")
    terms = method(batch, step=0)
    sum(v for k, v in terms.items() if k.endswith(("_kl", "_feat"))).backward()
    assert _grad_norm(det.head.parameters()) == 0.0  # targets are detached
    assert _grad_norm(det.neck.parameters()) == 0.0
    for name in ("C2", "C3", "C4"):
        assert _grad_norm(method.bottlenecks[name].parameters()) > 0
    layers = det.backbone.features
    c2_tap, c4_tap = det.backbone.taps[0], det.backbone.taps[2]
    assert _grad_norm(layers[: c2_tap + 1].parameters()) > 0  # the stages below the shallow sections
    assert _grad_norm(layers[c4_tap + 1:].parameters()) == 0.0  # C5's own layers feed no section


def test_byot_sections_option():
    _, method, batch = _setup("byot", sections=["C3"], alpha=0.0, lam=0.0)
    assert set(method(batch, step=0)) - DB_TERMS == {"byot_C3_text"}


# -- options and configs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,opts",
    [
        ("dsn", {"levels": ["P7"]}), ("dsn", {"levels": ["P1", "P1"]}), ("dsn", {"levels": []}),
        ("dsn", {"alpha": -0.1}), ("dsn", {"gamma": -1.0}), ("dsn", {"alhpa": 0.4}),
        ("sad", {"gamma": -0.1}), ("sad", {"start_fraction": 1.5}), ("sad", {"start_step": -2}), ("sad", {"p": 0.0}),
        ("byot", {"sections": ["C9"]}), ("byot", {"alpha": 1.5}), ("byot", {"lam": -1.0}), ("byot", {"tau": 0.0}),
    ],
)
def test_bad_options_are_user_errors(name, opts):
    with pytest.raises(UserError):
        _setup(name, **opts)


@pytest.mark.parametrize("name", ["dsn", "sad", "byot"])
def test_shipped_config_spells_out_every_default(name):
    from sdet.methods import METHODS

    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs" / "icdar2015" / f"mv3_db_{name}.yaml"))
    defaults = METHODS[name].Options()
    assert cfg.method.name == name
    assert cfg.method.options.keys() == vars(defaults).keys()
    for key, value in cfg.method.options.items():
        assert value == pytest.approx(getattr(defaults, key)) if isinstance(value, float) else value == getattr(defaults, key)


# -- end to end through the trainer ---------------------------------------------------------------


EAST = ["model.type=east", "data.min_text_size=4"]


@pytest.mark.parametrize(
    "name,extra", [("dsn", []), ("sad", []), ("byot", []), ("dsn", EAST), ("byot", EAST)],
    ids=["dsn-db", "sad-db", "byot-db", "dsn-east", "byot-east"],
)
def test_trainer_logs_method_terms(name, extra, synth_root, tmp_path):
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path / name, steps=2) + [f"method.name={name}"] + extra)
    Trainer(cfg, progress=False).run()
    records = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    assert len(train) == 2
    for record in train:
        assert EXPECTED_TERMS[name] <= set(record) and all(math.isfinite(record[k]) for k in EXPECTED_TERMS[name])
    if name == "sad":  # 2 steps: on from round(2 * 2/3) = step 1
        assert train[0]["sad"] == 0.0 and train[1]["sad"] > 0.0
    if name == "dsn":  # alpha 0.4 at step 0, 0.2 at step 1 of 2
        assert all(train[0][k] > 0 for k in EXPECTED_TERMS["dsn"])
