"""DBNet (Liao et al., AAAI 2020): probability + threshold maps, differentiable binarisation,
boxes from the contours of the thresholded probability map."""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from sdet.config import Config, DataConfig, ModelConfig
from sdet.detectors.db.head import DBHead
from sdet.detectors.db.loss import DBLoss
from sdet.detectors.db.postprocess import DBPostProcessConfig, db_postprocess
from sdet.detectors.db.targets import make_db_targets
from sdet.detectors.detection import Detection
from sdet.detectors.family import DetectorFamily


def _head(in_channels: int, cfg: ModelConfig) -> DBHead:
    return DBHead(in_channels, k=cfg.head.k)


def _targets(height: int, width: int, polygons: Sequence[np.ndarray], ignore: Sequence[bool], cfg: DataConfig) -> Dict[str, np.ndarray]:
    return make_db_targets(
        height, width, polygons, ignore,
        shrink_ratio=cfg.shrink_ratio, min_text_size=cfg.min_text_size,
        thresh_min=cfg.thresh_min, thresh_max=cfg.thresh_max,
    )


def _post(prob: np.ndarray, dest_hw: Tuple[int, int], cfg: Config, entropy: Optional[np.ndarray], **_: object) -> List[Detection]:
    fields = {f.name for f in dataclasses.fields(DBPostProcessConfig)}
    post = DBPostProcessConfig(**{k: v for k, v in dataclasses.asdict(cfg.post).items() if k in fields})
    return db_postprocess(prob, dest_hw, post, entropy=entropy)


DB = DetectorFamily(name="db", text_key="prob", build_head=_head, make_targets=_targets,
                    build_loss=lambda cfg: DBLoss(cfg.loss), postprocess=_post)
