"""BN folding for inference: every backbone and head gives the unfolded model's outputs, with no BN left."""
import pytest
import torch
from torch import nn

from sdet.config import ModelConfig
from sdet.models.backbones import BACKBONES
from sdet.detectors import FAMILIES
from sdet.models.detector import build_detector
from sdet.models.fold_bn import fold_batchnorm


def _randomise_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine parameters, so a wrong fold cannot pass unnoticed."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


# the config names Paddle's variants paddle_mobilenet_v3_{large,small}; use_se exercises the SE block
BACKBONE_NAMES = sorted(n for n in BACKBONES if n != "paddle_mobilenet_v3") + ["paddle_mobilenet_v3_large"]


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_folded_detector_matches_the_unfolded_one(model_type, backbone):
    torch.manual_seed(0)
    cfg = ModelConfig(type=model_type)
    cfg.backbone.name = backbone
    if "mobilenet" in backbone:
        cfg.backbone.width_mult = 0.5
    cfg.backbone.use_se = True
    model = build_detector(cfg)
    _randomise_bn(model, 1)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is left as it was
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        want, got = model(x).logits, folded(x).logits
    for key in want:
        # float32: the fold reorders one multiply-add per layer; errors of ~1e-6 relative per layer
        # accumulate over ~50 layers, far below the O(1) error of a wrongly folded channel
        scale = float(want[key].abs().max())
        assert torch.allclose(got[key], want[key], atol=1e-4 * max(scale, 1.0)), key
