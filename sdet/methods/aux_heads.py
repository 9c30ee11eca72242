"""Training-only auxiliary text heads that tap one feature-pyramid level.

Type A: 1x1 conv (linear). Type B: a BYOT-style bottleneck with residual, then 1x1.
Type C: an untied copy of the detector's own text head. Each returns one text logit at
its own resolution; callers upsample it to the main text map.
"""
from __future__ import annotations

from typing import Callable, Dict

from torch import Tensor, nn

from sdet.methods.blocks import bottleneck


class LinearAux(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.logit = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(x)


class BottleneckAux(nn.Module):
    """1x1 (C -> C/4) BN ReLU, 3x3 BN ReLU, 1x1 (-> C) BN, + input, ReLU, 1x1 -> 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = bottleneck(channels, channels)
        self.relu = nn.ReLU(inplace=True)
        self.logit = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.logit(self.relu(self.body(x) + x))


def _head_copy(channels: int, detector_head: nn.Module) -> nn.Module:
    return detector_head.text_branch_copy(channels)


AUX_HEADS: Dict[str, Callable[[int, nn.Module], nn.Module]] = {
    "A": lambda channels, head: LinearAux(channels),
    "B": lambda channels, head: BottleneckAux(channels),
    "C": _head_copy,
}


def build_aux_head(kind: str, channels: int, detector_head: nn.Module) -> nn.Module:
    if kind not in AUX_HEADS:
        raise ValueError(f"unknown auxiliary head type '{kind}' (A, B, C)")
    return AUX_HEADS[kind](channels, detector_head)
