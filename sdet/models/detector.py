"""A segmentation text detector = backbone -> FPN neck -> head, built from a ModelConfig.

The forward pass returns the head's logits and every intermediate feature, so training
methods can tap any level without hooks. Training-only modules never live here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

from torch import Tensor, nn

from sdet.config import ModelConfig
from sdet.models.backbones import BACKBONES, build_backbone
from sdet.errors import UserError
from sdet.models.heads.db import DBHead
from sdet.models.heads.east import GEOMETRIES, EASTHead
from sdet.models.necks.fpn import FPN, Pyramid
from sdet.models.necks.rsefpn import RSEFPN

NECKS: Dict[str, Callable[..., nn.Module]] = {"fpn": FPN, "rsefpn": RSEFPN}


@dataclass
class DetectorOutput:
    logits: Dict[str, Tensor]
    features: Pyramid


class Detector(nn.Module):
    """`text_key` names the logit whose sigmoid is the text map (DB: prob, EAST: score)."""

    text_key = "prob"

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


def _build_db(cfg: ModelConfig) -> Detector:
    backbone = _backbone(cfg)
    neck = NECKS[cfg.neck.name](backbone.out_channels, cfg.neck.inner_channels)
    return Detector(backbone, neck, DBHead(cfg.neck.inner_channels, k=cfg.head.k), text_key="prob")


def _build_east(cfg: ModelConfig) -> Detector:
    if cfg.head.east_geometry not in GEOMETRIES:
        raise UserError(f"model.head.east_geometry must be one of {sorted(GEOMETRIES)}, got '{cfg.head.east_geometry}'", "<config>")
    backbone = _backbone(cfg)
    neck = NECKS[cfg.neck.name](backbone.out_channels, cfg.neck.inner_channels)
    head = EASTHead(cfg.neck.inner_channels, geometry=cfg.head.east_geometry, scale=cfg.head.east_geo_scale)
    return Detector(backbone, neck, head, text_key="score")


DETECTORS: Dict[str, Callable[[ModelConfig], Detector]] = {"db": _build_db, "east": _build_east}


def build_detector(cfg: ModelConfig) -> Detector:
    if cfg.type not in DETECTORS:
        raise ValueError(f"unknown model type '{cfg.type}'; choose from {sorted(DETECTORS)}")
    return DETECTORS[cfg.type](cfg)
