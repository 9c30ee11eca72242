import torch

from sdet.config import ModelConfig, BackboneConfig, NeckConfig
from sdet.models.detector import InferenceModel, build_detector


def _small_db(inner=32):
    return build_detector(ModelConfig(backbone=BackboneConfig(name="mobilenet_v3_small", width_mult=0.5), neck=NeckConfig(inner_channels=inner)))


def test_db_forward_shapes_and_pyramid():
    det = _small_db()
    det.train()
    out = det(torch.randn(2, 3, 64, 96))
    assert set(out.logits) == {"prob", "thresh", "binary"}
    for v in out.logits.values():
        assert v.shape == (2, 1, 64, 96)
    strides = [32, 16, 8, 4]
    for level, s in zip(out.features.levels, strides):
        assert level.shape == (2, 8, 64 // s, 96 // s)
    assert out.features.fused.shape == (2, 32, 16, 24)
    assert len(out.features.backbone) == 4


def test_binary_logit_is_k_times_prob_minus_thresh():
    det = _small_db()
    det.train()
    out = det(torch.randn(2, 3, 64, 64))
    p, t = out.logits["prob"].sigmoid(), out.logits["thresh"].sigmoid()
    assert torch.allclose(out.logits["binary"], 50.0 * (p - t), atol=1e-5)


def test_eval_runs_prob_branch_only_and_inference_model_returns_probabilities():
    det = _small_db().eval()
    with torch.no_grad():
        out = det(torch.randn(1, 3, 64, 64))
        assert set(out.logits) == {"prob"}
        prob = InferenceModel(det)(torch.randn(1, 3, 64, 64))
    assert prob.shape == (1, 1, 64, 64)
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0


def test_odd_input_sizes_work():
    det = _small_db().eval()
    with torch.no_grad():
        out = det(torch.randn(1, 3, 70, 100))
    assert out.logits["prob"].shape[-2:] == (out.features.fused.shape[-2] * 4, out.features.fused.shape[-1] * 4)
