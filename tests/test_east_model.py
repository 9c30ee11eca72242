"""EAST detector: head shapes, loss behaviour, SDET on EAST, and a tiny end-to-end training run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sdet.config import BackboneConfig, HeadConfig, LossConfig, MethodConfig, ModelConfig, NeckConfig, load_config
from sdet.errors import UserError
from sdet.detectors import build_loss
from sdet.detectors.east.loss import EASTLoss
from sdet.methods import MethodContext, build_method
from sdet.methods.sdet import entropy_transfer_loss
from sdet.models.detector import InferenceModel, build_detector
from sdet.detectors.east.targets import make_east_targets

from conftest import tiny_overrides

SMALL = BackboneConfig(name="mobilenet_v3_small", width_mult=0.35)


def _east(geometry="rbox", backbone=SMALL, inner=32):
    return build_detector(ModelConfig(type="east", backbone=backbone, neck=NeckConfig(inner_channels=inner), head=HeadConfig(east_geometry=geometry)))


@pytest.mark.parametrize("geometry,channels", [("rbox", 5), ("quad", 8)])
@pytest.mark.parametrize(
    "backbone,inner",
    [(SMALL, 32), (BackboneConfig(name="mobilenet_v3_large", width_mult=1.0), 96), (BackboneConfig(name="resnet50"), 64)],
    ids=["mv3_small", "mv3_large", "resnet50"],
)
def test_outputs_at_stride_4(geometry, channels, backbone, inner):
    torch.manual_seed(0)
    det = _east(geometry, backbone, inner).eval()
    with torch.no_grad():
        out = det(torch.randn(2, 3, 64, 96))
    assert det.text_key == "score"
    assert out.logits["score"].shape == (2, 1, 16, 24)
    assert out.logits["geo"].shape == (2, channels, 16, 24)
    assert out.features.fused.shape[-2:] == (16, 24)
    geo = out.logits["geo"]
    if geometry == "rbox":
        assert float(geo[:, :4].min()) >= 0 and float(geo[:, :4].max()) <= 512
        assert float(geo[:, 4].abs().max()) < math.pi / 4
    else:
        assert float(geo.abs().max()) <= 512


def test_inference_model_returns_score_probabilities_and_bad_geometry_is_a_user_error():
    det = _east().eval()
    with torch.no_grad():
        prob = InferenceModel(det)(torch.randn(1, 3, 64, 64))
    assert prob.shape == (1, 1, 16, 16) and 0 <= float(prob.min()) and float(prob.max()) <= 1
    with pytest.raises(UserError, match="east_geometry"):
        _east("poly")


# ----------------------------------------------------------------------------- loss


def _batch(geometry="rbox", size=64, n=2, with_text=True):
    rng = np.random.default_rng(0)
    maps = []
    for _ in range(n):
        quads, ignore = [], []
        if with_text:
            quads = [np.array([[8, 12], [56, 16], [55, 34], [7, 30]], dtype=np.float64) + rng.uniform(-2, 2, (4, 2))]
            ignore = [False]
        maps.append(make_east_targets(size, size, quads, ignore, geometry=geometry, min_text_size=4))
    batch = {k: torch.from_numpy(np.stack([m[k] for m in maps])) for k in maps[0]}
    batch["image"] = torch.randn(n, 3, size, size)
    batch["text_mask"] = torch.zeros(n, size, size)
    batch["text_mask"][:, 14:30, 8:56] = 1
    return batch


@pytest.mark.parametrize("geometry,score_loss", [("rbox", "balanced_bce"), ("rbox", "dice"), ("quad", "balanced_bce")])
def test_loss_decreases_when_overfitting_one_batch(geometry, score_loss):
    torch.manual_seed(0)
    det = _east(geometry).train()
    loss_fn = EASTLoss(LossConfig(east_score_loss=score_loss))
    batch = _batch(geometry)
    assert batch["score_map"].sum() > 0
    opt = torch.optim.Adam(det.parameters(), lr=1e-2)
    history = []
    for _ in range(15):
        terms = loss_fn(det(batch["image"]).logits, batch)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    names = set(terms)
    assert names == ({f"score_{score_loss}", "geo_aabb", "geo_theta"} if geometry == "rbox" else {f"score_{score_loss}", "geo_quad"})
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < 0.7 * history[0]


@pytest.mark.parametrize("geometry", ["rbox", "quad"])
@pytest.mark.parametrize("score_loss", ["balanced_bce", "dice"])
def test_loss_is_finite_without_positives(geometry, score_loss):
    det = _east(geometry).train()
    batch = _batch(geometry, with_text=False)
    terms = EASTLoss(LossConfig(east_score_loss=score_loss))(det(batch["image"]).logits, batch)
    loss = sum(terms.values())
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in det.parameters())
    for name, value in terms.items():
        if name.startswith("geo"):
            assert float(value.detach()) == 0.0


def test_rbox_loss_zero_at_the_target_and_quad_loss_ignores_vertex_order():
    batch = _batch("rbox")
    exact = {"score": torch.where(batch["score_map"][:, None] > 0, 30.0, -30.0), "geo": batch["geo_map"].clone()}
    terms = EASTLoss(LossConfig())(exact, batch)
    assert float(terms["geo_aabb"]) == pytest.approx(0.0, abs=1e-6) and float(terms["geo_theta"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["score_balanced_bce"]) < 1e-6

    quad = _batch("quad")
    n, _, h, w = quad["geo_map"].shape
    rolled = quad["geo_map"].reshape(n, 4, 2, h, w).roll(1, dims=1).reshape(n, 8, h, w)
    pred = {"score": torch.zeros(n, 1, h, w), "geo": rolled + 1.0}
    a = EASTLoss(LossConfig())(pred, quad)["geo_quad"]
    b = EASTLoss(LossConfig())({"score": pred["score"], "geo": quad["geo_map"] + 1.0}, quad)["geo_quad"]
    assert float(a) == pytest.approx(float(b), rel=1e-6) and float(a) > 0


def test_text_loss_takes_any_resolution_and_config_errors_are_user_errors():
    batch = _batch()
    loss = EASTLoss(LossConfig())
    assert math.isfinite(float(loss.text_loss(torch.randn(2, 1, 64, 64), batch)))
    with pytest.raises(UserError, match="east_score_loss"):
        EASTLoss(LossConfig(east_score_loss="focal"))
    with pytest.raises(UserError, match="data.east_geometry"):
        build_loss(load_config(None, ["model.type=east", "model.head.east_geometry=quad"]))
    det = _east("quad")
    with pytest.raises(UserError, match="east_geometry"):
        loss(det(batch["image"]).logits, batch)  # rbox targets for a quad head


# ----------------------------------------------------------------------------- SDET on EAST


def _sdet(aux_type="B", level="P3", **opts):
    torch.manual_seed(0)
    det = _east().train()
    ctx = MethodContext(det, EASTLoss(LossConfig()), total_steps=10)
    method = build_method(MethodConfig("sdet", {"aux_type": aux_type, "level": level, **opts}), ctx)
    return det, method, _batch()


def _grad_norm(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("aux_type", ["A", "B", "C"])
@pytest.mark.parametrize("level", ["P0", "P3"])
def test_aux_logit_matches_score_resolution(aux_type, level):
    det, method, batch = _sdet(aux_type, level)
    out = det(batch["image"])
    assert method.aux_logit(out).shape == out.logits["score"].shape
    terms = method(batch, step=0)
    assert {"aux_text", "entropy_transfer", "score_balanced_bce", "geo_aabb"} <= set(terms)
    sum(terms.values()).backward()
    assert _grad_norm(method.aux_head) > 0


def test_type_c_is_an_untied_copy_of_the_score_path():
    det, method, _ = _sdet("C")
    convs = [m for m in method.aux_head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)] and convs[-1].out_channels == 1
    assert convs[0].out_channels == det.head.trunk[0].out_channels
    assert not set(map(id, method.parameters())) & set(map(id, det.parameters()))


@pytest.mark.parametrize("level,index", [("P3", 0), ("P1", 2)])
def test_entropy_term_gradient_routing(level, index):
    det, method, batch = _sdet("B", level)
    out = det(batch["image"])
    entropy_transfer_loss(method.aux_logit(out), out.logits["score"], detach=True).backward()
    assert _grad_norm(det.head) == 0.0  # no entropy gradient reaches the main score head
    assert _grad_norm(method.aux_head) > 0.0
    assert _grad_norm(det.neck.smooth[index]) > 0.0  # the tapped level ...
    assert all(_grad_norm(det.neck.smooth[i]) == 0.0 for i in range(4) if i != index)
    assert _grad_norm(det.backbone) > 0.0  # ... and the backbone below it


def test_sdet_keeps_the_detector_state_dict_unchanged():
    base = _east()
    for aux_type in "ABC":
        det, method, _ = _sdet(aux_type)
        assert list(det.state_dict()) == list(base.state_dict())
        assert not any(k.startswith(("backbone", "neck", "head.")) for k in method.state_dict())


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("geometry,method", [("rbox", "baseline"), ("quad", "sdet")])
def test_trainer_runs_east_end_to_end(synth_root, tmp_path, geometry, method):
    from sdet.engine.trainer import Trainer

    overrides = tiny_overrides(synth_root, tmp_path / "run", steps=3) + [
        "model.type=east",
        f"model.head.east_geometry={geometry}",
        f"data.east_geometry={geometry}",
        "data.min_text_size=4",
        f"method.name={method}",
    ]
    if method == "sdet":
        overrides.append("method.options={aux_type: B, level: P3}")
    result = Trainer(load_config(None, overrides), progress=False).run()
    assert result.step == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    assert len(train) == 3 and all(math.isfinite(r["loss"]) for r in train)
    assert ("geo_aabb" if geometry == "rbox" else "geo_quad") in train[-1]
    assert (tmp_path / "run" / "best.pt").exists()


def test_half_precision_geometry_does_not_overflow():
    """Under AMP the head emits float16; box areas (up to 1024^2) must be computed in float32."""
    batch = _batch()
    n, _, h, w = batch["geo_map"].shape
    geo = torch.full((n, 5, h, w), 500.0)
    geo[:, 4] = 0.1
    logits = {"score": torch.zeros(n, 1, h, w), "geo": geo}
    full = EASTLoss(LossConfig())(logits, batch)
    half = EASTLoss(LossConfig())({k: v.half() for k, v in logits.items()}, batch)
    for name in full:
        assert math.isfinite(float(half[name])) and float(half[name]) == pytest.approx(float(full[name]), rel=1e-3)
