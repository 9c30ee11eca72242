"""Detector losses by model type (plain dict registry)."""
from __future__ import annotations

from typing import Any, Callable, Dict

from sdet.config import Config
from sdet.losses.db import DBLoss

LOSSES: Dict[str, Callable[[Config], Any]] = {
    "db": lambda cfg: DBLoss(cfg.loss),
}


def build_loss(cfg: Config) -> Any:
    return LOSSES[cfg.model.type](cfg)
