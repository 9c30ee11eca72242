"""Detector losses by model type (plain dict registry)."""
from __future__ import annotations

from typing import Any, Callable, Dict

from sdet.config import Config
from sdet.errors import UserError
from sdet.losses.db import DBLoss
from sdet.losses.east import EASTLoss


def _east_loss(cfg: Config) -> EASTLoss:
    # The dataset sees only cfg.data, so the geometry is named twice; catch a mismatch before training.
    if cfg.data.east_geometry != cfg.model.head.east_geometry:
        raise UserError(
            f"data.east_geometry ('{cfg.data.east_geometry}') must equal model.head.east_geometry "
            f"('{cfg.model.head.east_geometry}')", "<config>"
        )
    return EASTLoss(cfg.loss)


LOSSES: Dict[str, Callable[[Config], Any]] = {
    "db": lambda cfg: DBLoss(cfg.loss),
    "east": _east_loss,
}


def build_loss(cfg: Config) -> Any:
    return LOSSES[cfg.model.type](cfg)
