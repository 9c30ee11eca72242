"""Backbones: each returns [C2, C3, C4, C5] at strides 4/8/16/32 and exposes `out_channels`.

A plain dict registry keeps lookup explicit: adding a backbone is one import and one line.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from sdet.models.backbones.mobilenetv3 import MobileNetV3, mobilenet_v3_large, mobilenet_v3_small
from sdet.models.backbones.paddle_mobilenetv3 import PaddleMobileNetV3, paddle_mobilenet_v3
from sdet.models.backbones.pretrained import load_torchvision_state_dict
from sdet.models.backbones.resnet import ResNet, resnet18, resnet50

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "paddle_mobilenet_v3": paddle_mobilenet_v3,
}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a registered backbone by name; unknown names raise ValueError listing valid ones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)


__all__ = [
    "BACKBONES",
    "MobileNetV3",
    "PaddleMobileNetV3",
    "ResNet",
    "build_backbone",
    "load_torchvision_state_dict",
]
