"""A segmentation text detector = backbone -> FPN neck -> head, built from a ModelConfig.

The forward pass returns the head's logits and every intermediate feature, so training
methods can tap any level without hooks. Training-only modules never live here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

from torch import Tensor, nn

from sdet.config import ModelConfig
from sdet.detectors import detector_family
from sdet.models.backbones import BACKBONES, build_backbone
from sdet.models.necks.fpn import FPN, Pyramid
from sdet.models.necks.rsefpn import RSEFPN

NECKS: Dict[str, Callable[..., nn.Module]] = {"fpn": FPN, "rsefpn": RSEFPN}


@dataclass
class DetectorOutput:
    logits: Dict[str, Tensor]
    features: Pyramid


class Detector(nn.Module):
    """`text_key` names the logit whose sigmoid is the text map (DB: prob, EAST: score)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module, text_key: str):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.text_key = text_key

    def forward(self, images: Tensor) -> DetectorOutput:
        pyramid = self.neck(self.backbone(images))
        return DetectorOutput(logits=self.head(pyramid.fused), features=pyramid)


class InferenceModel(nn.Module):
    """What is exported and timed: image -> text probability map, nothing else."""

    def __init__(self, detector: Detector):
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> Tensor:
        return self.detector(images).logits[self.detector.text_key].sigmoid()


PADDLE_PREFIX = "paddle_mobilenet_v3_"


def backbone_names() -> list:
    """What model.backbone.name accepts: the registry's, with Paddle's variant named by size."""
    plain = [n for n in BACKBONES if n != "paddle_mobilenet_v3"]
    return sorted(plain + [PADDLE_PREFIX + "large", PADDLE_PREFIX + "small"])


def _backbone(cfg: ModelConfig) -> nn.Module:
    b = cfg.backbone
    if b.name.startswith(PADDLE_PREFIX):
        return build_backbone(
            "paddle_mobilenet_v3", model_name=b.name.rsplit("_", 1)[1], scale=b.width_mult, disable_se=not b.use_se
        )
    if b.name.startswith("mobilenet_v3"):
        return build_backbone(b.name, width_mult=b.width_mult, use_se=b.use_se, pretrained=b.pretrained)
    return build_backbone(b.name, pretrained=b.pretrained)


def build_detector(cfg: ModelConfig) -> Detector:
    """Shared backbone and neck, the family's head (sdet/detectors)."""
    family = detector_family(cfg.type)
    backbone = _backbone(cfg)
    neck = NECKS[cfg.neck.name](backbone.out_channels, cfg.neck.inner_channels)
    return Detector(backbone, neck, family.build_head(cfg.neck.inner_channels, cfg), text_key=family.text_key)
