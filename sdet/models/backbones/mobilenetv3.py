"""MobileNetV3 backbones laid out exactly like torchvision's, so its ImageNet weights load.

Parameter names and shapes follow torchvision 0.28 (`features.0.0.weight`,
`features.1.block.0.0.weight`, ...). The classifier is left out: a detector only needs
the feature pyramid C2..C5 at strides 4/8/16/32.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from torch import Tensor, nn


from sdet.models.backbones.pretrained import load_torchvision_state_dict

# torchvision uses BN with these settings for MobileNetV3; eps matters for numerics.
_BN_EPS = 0.001
_BN_MOMENTUM = 0.01


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping more than 10%.

    Same rule as torchvision's `_make_divisible` (and PaddleOCR's `make_divisible`), so
    width-multiplied models have the channel counts their published weights expect.
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class BlockConfig(NamedTuple):
    """One inverted-residual block: kernel, expanded and output channels, SE, activation, stride."""

    kernel: int
    expanded: int
    out: int
    use_se: bool
    act: str  # "RE" (ReLU) or "HS" (Hardswish)
    stride: int


_LARGE = [
    BlockConfig(3, 16, 16, False, "RE", 1),
    BlockConfig(3, 64, 24, False, "RE", 2),
    BlockConfig(3, 72, 24, False, "RE", 1),
    BlockConfig(5, 72, 40, True, "RE", 2),
    BlockConfig(5, 120, 40, True, "RE", 1),
    BlockConfig(5, 120, 40, True, "RE", 1),
    BlockConfig(3, 240, 80, False, "HS", 2),
    BlockConfig(3, 200, 80, False, "HS", 1),
    BlockConfig(3, 184, 80, False, "HS", 1),
    BlockConfig(3, 184, 80, False, "HS", 1),
    BlockConfig(3, 480, 112, True, "HS", 1),
    BlockConfig(3, 672, 112, True, "HS", 1),
    BlockConfig(5, 672, 160, True, "HS", 2),
    BlockConfig(5, 960, 160, True, "HS", 1),
    BlockConfig(5, 960, 160, True, "HS", 1),
]

_SMALL = [
    BlockConfig(3, 16, 16, True, "RE", 2),
    BlockConfig(3, 72, 24, False, "RE", 2),
    BlockConfig(3, 88, 24, False, "RE", 1),
    BlockConfig(5, 96, 40, True, "HS", 2),
    BlockConfig(5, 240, 40, True, "HS", 1),
    BlockConfig(5, 240, 40, True, "HS", 1),
    BlockConfig(5, 120, 48, True, "HS", 1),
    BlockConfig(5, 144, 48, True, "HS", 1),
    BlockConfig(5, 288, 96, True, "HS", 2),
    BlockConfig(5, 576, 96, True, "HS", 1),
    BlockConfig(5, 576, 96, True, "HS", 1),
]

# Indices into `features` whose outputs are C2..C5 (the last layer before each
# stride-2 step, and the final 1x1 conv for C5); same as torchvision's golden taps.
_ARCHS: dict[str, tuple[list[BlockConfig], tuple[int, int, int, int]]] = {
    "large": (_LARGE, (3, 6, 12, 16)),
    "small": (_SMALL, (1, 3, 8, 12)),
}


def _activation(kind: Optional[str]) -> Optional[nn.Module]:
    if kind is None:
        return None
    if kind == "RE":
        return nn.ReLU(inplace=True)
    if kind == "HS":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {kind!r}")


def conv_bn_act(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: Optional[str] = "HS"
) -> nn.Sequential:
    """Conv (no bias) -> BN -> optional activation, indexed 0/1/2 like torchvision's."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch, eps=_BN_EPS, momentum=_BN_MOMENTUM),
    ]
    activation = _activation(act)
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention: global pool -> fc1 -> ReLU -> fc2 -> hardsigmoid gate."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.activation = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.scale_activation = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise -> optional SE -> project (1x1, linear), residual when shapes allow."""

    def __init__(self, in_ch: int, cfg: BlockConfig, width_mult: float, use_se: bool):
        super().__init__()
        expanded = make_divisible(cfg.expanded * width_mult)
        out_ch = make_divisible(cfg.out * width_mult)
        self.use_res_connect = cfg.stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expanded != in_ch:
            layers.append(conv_bn_act(in_ch, expanded, 1, act=cfg.act))
        layers.append(conv_bn_act(expanded, expanded, cfg.kernel, cfg.stride, groups=expanded, act=cfg.act))
        if cfg.use_se and use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(conv_bn_act(expanded, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.use_res_connect else y


class MobileNetV3(nn.Module):
    """MobileNetV3 feature extractor returning [C2, C3, C4, C5] (strides 4, 8, 16, 32)."""

    def __init__(
        self,
        arch: str = "large",
        width_mult: float = 1.0,
        use_se: bool = True,
        pretrained: Optional[str] = None,
    ):
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"unknown MobileNetV3 arch {arch!r}; valid: {sorted(_ARCHS)}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        blocks, taps = _ARCHS[arch]
        stem_ch = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [conv_bn_act(3, stem_ch, 3, stride=2, act="HS")]
        channels = [stem_ch]
        for cfg in blocks:
            block = InvertedResidual(channels[-1], cfg, width_mult, use_se)
            layers.append(block)
            channels.append(block.out_channels)
        # torchvision sizes the last conv from the (already rounded) last block width.
        last_ch = 6 * channels[-1]
        layers.append(conv_bn_act(channels[-1], last_ch, 1, act="HS"))
        channels.append(last_ch)
        self.features = nn.Sequential(*layers)
        self.taps = taps
        self.out_channels: list[int] = [channels[i] for i in taps]
        self._init_weights()
        if pretrained:
            load_torchvision_state_dict(self, pretrained)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs: list[Tensor] = []
        last_tap = self.taps[-1]
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outputs.append(x)
            if index == last_tap:
                break
        return outputs


def mobilenet_v3_large(
    *, width_mult: float = 1.0, use_se: bool = True, pretrained: Optional[str] = None
) -> MobileNetV3:
    """torchvision-compatible MobileNetV3-Large; C2..C5 = features[3], [6], [12], [16]."""
    return MobileNetV3("large", width_mult=width_mult, use_se=use_se, pretrained=pretrained)


def mobilenet_v3_small(
    *, width_mult: float = 1.0, use_se: bool = True, pretrained: Optional[str] = None
) -> MobileNetV3:
    """torchvision-compatible MobileNetV3-Small; C2..C5 = features[1], [3], [8], [12]."""
    return MobileNetV3("small", width_mult=width_mult, use_se=use_se, pretrained=pretrained)


__all__ = ["MobileNetV3", "make_divisible", "mobilenet_v3_large", "mobilenet_v3_small"]
