"""SDET: entropy numerics, auxiliary heads, gradient routing, zero inference footprint."""
import math

import pytest
import torch

from sdet.config import BackboneConfig, LossConfig, MethodConfig, ModelConfig, NeckConfig
from sdet.detectors.db.loss import DBLoss
from sdet.methods import MethodContext, build_method
from sdet.methods.sdet import entropy_transfer_loss
from sdet.models.detector import build_detector
from sdet.ops.entropy import binary_entropy


def test_entropy_exact_values_and_symmetry():
    z = torch.tensor([0.0, 1.0, -1.0, 3.0, -3.0, 20.0])
    e = binary_entropy(z)
    assert e[0].item() == pytest.approx(1.0, abs=1e-7)
    assert torch.allclose(e[1], e[2]) and torch.allclose(e[3], e[4])
    p = torch.sigmoid(torch.tensor(3.0))
    ref = -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))
    assert e[3].item() == pytest.approx(ref.item(), rel=1e-5)
    assert 0.0 <= e.min().item() and e.max().item() <= 1.0 + 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_entropy_gradients_finite_for_huge_logits(dtype):
    z = torch.tensor([-1e4, -100.0, -10.0, 0.0, 10.0, 100.0, 1e4], dtype=dtype, requires_grad=True)
    e = binary_entropy(z)
    assert torch.isfinite(e).all()
    e.sum().backward()
    assert torch.isfinite(z.grad).all()
    # analytic gradient -z s (1-s) / ln 2 at z = 10
    s = torch.sigmoid(torch.tensor(10.0))
    assert z.grad[4].float().item() == pytest.approx((-10 * s * (1 - s) / math.log(2)).item(), rel=1e-2, abs=1e-6)


def test_entropy_keeps_a_confident_pixels_value_and_gradient_on_both_sides():
    # float32: at z = +18 the softplus(z) - z s(z) form cancels to 0 (and so does its gradient), while
    # z = -18 stays exact; evaluated at |z| both sides agree with the float64 reference
    z = torch.tensor([-18.0, 18.0], requires_grad=True)
    e = binary_entropy(z)
    e.sum().backward()
    z64 = z.detach().double()
    s = torch.sigmoid(z64)
    ref = -(s * torch.log2(s) + (1 - s) * torch.log2(1 - s))
    grad = -z64 * s * (1 - s) / math.log(2)
    assert e[0].item() == e[1].item()
    assert e.double().tolist() == pytest.approx(ref.tolist(), rel=1e-4)
    assert z.grad.double().tolist() == pytest.approx(grad.tolist(), rel=1e-4)


def _setup(aux_type="A", level="P3", **opts):
    torch.manual_seed(0)
    model_cfg = ModelConfig(backbone=BackboneConfig(name="mobilenet_v3_small", width_mult=0.35), neck=NeckConfig(inner_channels=32))
    det = build_detector(model_cfg).train()
    ctx = MethodContext(det, DBLoss(LossConfig()), total_steps=10)
    method = build_method(MethodConfig("sdet", {"aux_type": aux_type, "level": level, **opts}), ctx)
    images = torch.randn(2, 3, 64, 64)
    gt = torch.zeros(2, 64, 64)
    gt[:, 20:40, 10:50] = 1
    batch = {
        "image": images, "shrink_map": gt, "shrink_mask": torch.ones_like(gt),
        "threshold_map": torch.full_like(gt, 0.5), "threshold_mask": torch.ones_like(gt), "text_mask": gt.clone(),
    }
    return det, method, batch


def _grad_norm(module):
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return sum(float(g.abs().sum()) for g in grads)


@pytest.mark.parametrize("aux_type", ["A", "B", "C"])
@pytest.mark.parametrize("level", ["P0", "P1", "P2", "P3"])
def test_aux_logit_matches_main_resolution(aux_type, level):
    det, method, batch = _setup(aux_type, level)
    out = det(batch["image"])
    aux = method.aux_logit(out)
    assert aux.shape == out.logits["prob"].shape


@pytest.mark.parametrize("level,index", [("P3", 0), ("P0", 3)])
def test_entropy_term_gradient_routing(level, index):
    det, method, batch = _setup("A", level)
    method(batch, step=0)["entropy_transfer"].backward()  # through the method: its detach_target default
    assert _grad_norm(det.head) == 0.0  # the main text head receives nothing from the entropy term
    assert _grad_norm(method.aux_head) > 0.0
    assert _grad_norm(det.neck.smooth[index]) > 0.0  # the tapped level
    others = [i for i in range(4) if i != index]
    assert all(_grad_norm(det.neck.smooth[i]) == 0.0 for i in others)
    assert _grad_norm(det.backbone) > 0.0  # fed back into the shallow layers


def test_without_detach_the_main_head_gets_entropy_gradient():
    det, method, batch = _setup("A", "P3", detach_target=False)
    method(batch, step=0)["entropy_transfer"].backward()
    assert _grad_norm(det.head.prob) > 0.0


def test_lambda_et_zero_aux_still_trains_from_ground_truth():
    det, method, batch = _setup("B", "P2", lambda_et=0.0)
    terms = method(batch, step=0)
    assert "entropy_transfer" not in terms and "aux_text" in terms
    sum(terms.values()).backward()
    assert _grad_norm(method.aux_head) > 0.0


def test_start_step_and_masked_variant():
    det, method, batch = _setup("A", "P3", et_start_step=5, masked=True)
    early = method(batch, step=0)
    assert early["entropy_transfer"].item() == 0.0
    late = method(batch, step=5)
    out = det(batch["image"])  # the same forward the method ran (train mode, same batch)
    aux, main = method.aux_logit(out), out.logits["prob"]
    sq = (binary_entropy(aux) - binary_entropy(main)) ** 2
    m = batch["text_mask"][:, None]
    expected = (sq * m).sum() / m.sum()
    assert late["entropy_transfer"].item() == pytest.approx(expected.item(), rel=1e-5)  # the method masks
    assert expected.item() != pytest.approx(sq.mean().item(), rel=1e-3)  # ... which the plain mean would not match
    assert entropy_transfer_loss(aux, main, True, batch["text_mask"]).item() == pytest.approx(expected.item(), rel=1e-5)
    assert entropy_transfer_loss(aux, main, True, None).item() == pytest.approx(sq.mean().item(), rel=1e-5)


def test_aux_text_iou_is_logged_per_step_over_micro_batches():
    det, method, batch = _setup("A", "P3")
    assert method.after_step(0) == {}  # no batch seen yet
    with torch.no_grad():
        method.aux_head.logit.weight.zero_()
        method.aux_head.logit.bias.fill_(5.0)  # every pixel "text": IoU = text area / image area
    method(batch, step=0)
    method(batch, step=0)  # a second micro-batch of the same step: counts add, the ratio stays
    area = batch["shrink_map"].mean().item()
    assert method.after_step(0)["aux_text_iou"] == pytest.approx(area)
    assert method.after_step(1) == {}  # counts are reset after each step
    with torch.no_grad():
        method.aux_head.logit.bias.fill_(-5.0)  # nothing "text": IoU 0, as for an inverted map
    method(batch, step=1)
    assert method.after_step(1)["aux_text_iou"] == 0.0


def test_et_start_fraction_counts_from_the_schedule_and_the_later_start_wins():
    det, method, batch = _setup("A", "P3", et_start_fraction=0.3)  # total_steps 10: from step 3
    assert method(batch, step=2)["entropy_transfer"].item() == 0.0
    assert method(batch, step=3)["entropy_transfer"].item() > 0.0
    _, later, _ = _setup("A", "P3", et_start_fraction=0.3, et_start_step=6)
    assert later(batch, step=5)["entropy_transfer"].item() == 0.0
    assert later(batch, step=6)["entropy_transfer"].item() > 0.0


def test_inference_state_dict_identical_to_baseline():
    base = build_detector(ModelConfig(backbone=BackboneConfig(name="mobilenet_v3_small", width_mult=0.35), neck=NeckConfig(inner_channels=32)))
    for aux_type in "ABC":
        det, method, _ = _setup(aux_type, "P1")
        a, b = det.state_dict(), base.state_dict()
        assert list(a) == list(b)
        assert all(a[k].shape == b[k].shape for k in a)
        assert method.state_dict() and all(k.startswith("aux_head.") for k in method.state_dict())


def test_bad_options_are_user_errors():
    from sdet.errors import UserError

    with pytest.raises(UserError):
        _setup("D", "P3")
    with pytest.raises(UserError):
        _setup("A", "P7")
    with pytest.raises(UserError, match="lamda_et"):
        _setup("A", "P3", lamda_et=1.0)
    with pytest.raises(UserError, match="et_start_fraction"):
        _setup("A", "P3", et_start_fraction=1.0)
    with pytest.raises(UserError, match="lambda_et"):
        _setup("A", "P3", lambda_et=-1.0)  # would silently switch the term off
    with pytest.raises(UserError, match="never"):
        _setup("A", "P3", et_start_step=10)  # total_steps 10: steps 0..9
    _setup("A", "P3", et_start_step=10, lambda_et=0.0)  # no entropy term asked for: nothing to start
