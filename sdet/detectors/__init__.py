"""Detector families by `model.type` (plain dict registry): head, targets, loss and
post-processing of each live in its own folder (sdet/detectors/db, sdet/detectors/east)."""
from __future__ import annotations

from typing import Any, Dict

from sdet.config import Config
from sdet.detectors.db import DB
from sdet.detectors.east import EAST
from sdet.detectors.family import DetectorFamily

FAMILIES: Dict[str, DetectorFamily] = {"db": DB, "east": EAST}


def detector_family(model_type: str) -> DetectorFamily:
    if model_type not in FAMILIES:
        raise ValueError(f"unknown model type '{model_type}'; choose from {sorted(FAMILIES)}")
    return FAMILIES[model_type]


def build_loss(cfg: Config) -> Any:
    """The detector loss of the config's family: a callable (logits, batch) -> named terms."""
    return detector_family(cfg.model.type).build_loss(cfg)
