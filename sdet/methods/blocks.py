"""The conv units that the training-only modules of every method are built from."""
from __future__ import annotations

from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """kxk conv (no bias: BN follows) + BN (+ ReLU), 'same' padding; stride 2 halves the resolution."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def bottleneck(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 -> 3x3 -> 1x1 (middle width out / 4, as a ResNet bottleneck), BN after each, ReLU between.

    The last BN has no ReLU: the features these blocks feed or mimic (a residual sum, the
    signed fused FPN feature) have negative values a rectified output could not reach.
    """
    mid = max(out_channels // 4, 1)
    return nn.Sequential(
        *conv_bn(in_channels, mid, 1), *conv_bn(mid, mid, 3), *conv_bn(mid, out_channels, 1, relu=False)
    )
