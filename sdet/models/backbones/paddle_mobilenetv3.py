"""PaddleOCR's detection MobileNetV3 (det_mobilenet_v3.py) rebuilt in PyTorch.

PaddleOCR's published DB/EAST models use this variant, not torchvision's: the stages
are cut differently (C5 ends with a 1x1 "conv_last"), the SE squeeze width is not
rounded, and the SE gate is Paddle's hardsigmoid clip(0.2x + 0.5, 0, 1), which is not
torch's x/6 + 0.5. Submodules carry Paddle's names so its weights map by a rename of
the BN buffers only (table at the end of this file).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


from sdet.models.backbones.mobilenetv3 import make_divisible

SUPPORTED_SCALES = (0.35, 0.5, 0.75, 1.0, 1.25)

# k, expanded, out, se, act, stride (Paddle's cfg tables)
_LARGE = [
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
]
_SMALL = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
]
# model_name -> (cfg, channels of conv_last, first block index allowed to start a stage)
_MODELS = {"large": (_LARGE, 960, 2), "small": (_SMALL, 576, 0)}


def paddle_hardsigmoid(x: Tensor, slope: float = 0.2, offset: float = 0.5) -> Tensor:
    """Paddle's `F.hardsigmoid(x, slope, offset)` = clip(slope*x + offset, 0, 1)."""
    return torch.clamp(x * slope + offset, 0.0, 1.0)


class ConvBNLayer(nn.Module):
    """Conv (no bias) -> BN (eps 1e-5, as Paddle's) -> optional relu/hardswish."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        groups: int = 1,
        act: Optional[str] = None,
    ):
        super().__init__()
        if act not in (None, "relu", "hardswish"):
            raise ValueError(f"unknown activation {act!r}")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "hardswish":
            return F.hardswish(x)  # x * relu6(x + 3) / 6, identical to Paddle's
        return x


class SEModule(nn.Module):
    """Squeeze-excitation with Paddle's numerics: unrounded squeeze, gate clip(0.2x+0.5)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate = self.conv2(F.relu(self.conv1(self.avg_pool(x))))
        return x * paddle_hardsigmoid(gate)


class ResidualUnit(nn.Module):
    """expand_conv -> bottleneck_conv (depthwise) -> [mid_se] -> linear_conv (+ shortcut)."""

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, kernel_size: int, stride: int, use_se: bool, act: str
    ):
        super().__init__()
        self.if_shortcut = stride == 1 and in_channels == out_channels
        self.expand_conv = ConvBNLayer(in_channels, mid_channels, 1, 1, 0, act=act)
        self.bottleneck_conv = ConvBNLayer(
            mid_channels, mid_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=mid_channels, act=act
        )
        self.mid_se = SEModule(mid_channels) if use_se else None
        self.linear_conv = ConvBNLayer(mid_channels, out_channels, 1, 1, 0, act=None)

    def forward(self, inputs: Tensor) -> Tensor:
        x = self.bottleneck_conv(self.expand_conv(inputs))
        if self.mid_se is not None:
            x = self.mid_se(x)
        x = self.linear_conv(x)
        return inputs + x if self.if_shortcut else x


class PaddleMobileNetV3(nn.Module):
    """PaddleOCR det MobileNetV3; forward returns [C2, C3, C4, C5] (strides 4, 8, 16, 32).

    Stages are registered as `stage0`..`stage3` (Paddle's names), not as a ModuleList,
    so state_dict keys read `stage0.0.expand_conv.conv.weight` exactly like Paddle's.
    """

    def __init__(self, model_name: str = "large", scale: float = 0.5, disable_se: bool = False, in_channels: int = 3):
        super().__init__()
        if model_name not in _MODELS:
            raise ValueError(f"unknown model_name {model_name!r}; valid: {sorted(_MODELS)}")
        if scale not in SUPPORTED_SCALES:
            raise ValueError(f"unsupported scale {scale}; valid: {list(SUPPORTED_SCALES)}")
        cfg, last_channels, start_idx = _MODELS[model_name]

        inplanes = make_divisible(16 * scale)
        self.conv = ConvBNLayer(in_channels, inplanes, 3, 2, 1, act="hardswish")
        stages: list[list[nn.Module]] = [[]]
        self.out_channels: list[int] = []
        for i, (k, exp, c, se, act, s) in enumerate(cfg):
            # A new stage starts at every stride-2 block, except the early ones in "large".
            if s == 2 and i > start_idx:
                self.out_channels.append(inplanes)
                stages.append([])
            out = make_divisible(scale * c)
            stages[-1].append(
                ResidualUnit(inplanes, make_divisible(scale * exp), out, k, s, se and not disable_se, act)
            )
            inplanes = out
        last = make_divisible(scale * last_channels)
        stages[-1].append(ConvBNLayer(inplanes, last, 1, 1, 0, act="hardswish"))
        self.out_channels.append(last)
        self.num_stages = len(stages)
        for i, blocks in enumerate(stages):
            self.add_module(f"stage{i}", nn.Sequential(*blocks))

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"stage{i}") for i in range(self.num_stages)]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.conv(x)
        outputs: list[Tensor] = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


def paddle_mobilenet_v3(*, model_name: str = "large", scale: float = 0.5, disable_se: bool = False) -> PaddleMobileNetV3:
    """PaddleOCR's det backbone; large x0.5 has out_channels [16, 24, 56, 480]."""
    return PaddleMobileNetV3(model_name=model_name, scale=scale, disable_se=disable_se)


def paddle_to_torch_key(name: str) -> str:
    """Map a Paddle backbone parameter name (without the `backbone.` prefix) to ours."""
    if name.endswith("._mean"):
        return name[: -len("._mean")] + ".running_mean"
    if name.endswith("._variance"):
        return name[: -len("._variance")] + ".running_var"
    return name


# Paddle -> torch name mapping (PaddleOCR checkpoints prefix these with "backbone."):
#
#   Paddle                                        torch (this module)
#   conv.conv.weight                              conv.conv.weight            (OIHW, same layout)
#   conv.bn.weight / conv.bn.bias                 conv.bn.weight / .bias      (gamma / beta)
#   conv.bn._mean                                 conv.bn.running_mean
#   conv.bn._variance                             conv.bn.running_var
#   stage{s}.{b}.expand_conv.conv.weight          same name
#   stage{s}.{b}.bottleneck_conv.bn._mean         stage{s}.{b}.bottleneck_conv.bn.running_mean
#   stage{s}.{b}.mid_se.conv1.weight / .bias      same name (1x1 convs, with bias)
#   stage{s}.{b}.mid_se.conv2.weight / .bias      same name
#   stage{s}.{b}.linear_conv.*                    same rule as above
#   stage3.{last}.conv.weight, .bn.*              conv_last: a bare ConvBNLayer ending stage3
#   (none)                                        *.bn.num_batches_tracked (keep as is)
#
# Paddle's BatchNorm uses eps=1e-5 like torch's default; its momentum (0.9 on the
# running value) differs from torch's convention but only matters when training.
