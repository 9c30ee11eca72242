"""EAST (Zhou et al., CVPR 2017): a score map and RBOX or QUAD geometry at stride 4, boxes by
locality-aware NMS (docs/EAST.md)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from sdet.config import Config, DataConfig, ModelConfig
from sdet.detectors.detection import Detection
from sdet.detectors.east.head import GEOMETRIES, EASTHead
from sdet.detectors.east.loss import EASTLoss
from sdet.detectors.east.postprocess import EASTPostProcessConfig, east_postprocess
from sdet.detectors.east.targets import GEO_CHANNELS, make_east_targets
from sdet.detectors.family import DetectorFamily
from sdet.errors import UserError


def _head(in_channels: int, cfg: ModelConfig) -> EASTHead:
    if cfg.head.east_geometry not in GEOMETRIES:
        raise UserError(f"model.head.east_geometry must be one of {sorted(GEOMETRIES)}, got '{cfg.head.east_geometry}'", "<config>")
    return EASTHead(in_channels, geometry=cfg.head.east_geometry, scale=cfg.head.east_geo_scale)


def _targets(height: int, width: int, polygons: Sequence[np.ndarray], ignore: Sequence[bool], cfg: DataConfig) -> Dict[str, np.ndarray]:
    if cfg.east_geometry not in GEO_CHANNELS:
        raise UserError(f"data.east_geometry must be one of {sorted(GEO_CHANNELS)}, got '{cfg.east_geometry}'", "<config>")
    return make_east_targets(
        height, width, polygons, ignore,
        shrink=cfg.east_shrink_ratio, min_text_size=cfg.min_text_size, geometry=cfg.east_geometry,
    )


def _loss(cfg: Config) -> EASTLoss:
    # The dataset sees only cfg.data, so the geometry is named twice; catch a mismatch before training.
    if cfg.data.east_geometry != cfg.model.head.east_geometry:
        raise UserError(
            f"data.east_geometry ('{cfg.data.east_geometry}') must equal model.head.east_geometry "
            f"('{cfg.model.head.east_geometry}')", "<config>"
        )
    return EASTLoss(cfg.loss)


def _post(
    prob: np.ndarray,
    dest_hw: Tuple[int, int],
    cfg: Config,
    entropy: Optional[np.ndarray],
    logits: Optional[Dict[str, torch.Tensor]] = None,
    input_hw: Optional[Tuple[int, int]] = None,
) -> List[Detection]:
    if logits is None or "geo" not in logits:
        raise ValueError("EAST post-processing needs the detector's 'geo' output (pass logits=...)")
    geo = logits["geo"][0].float().cpu().numpy()
    if input_hw is None:  # the score map is at stride 4 of the input
        input_hw = (prob.shape[0] * 4, prob.shape[1] * 4)
    post = EASTPostProcessConfig(
        score_thresh=cfg.post.east_score_thresh,
        nms_thresh=cfg.post.east_nms_thresh,
        box_thresh=cfg.post.east_box_thresh,
        max_candidates=cfg.post.east_max_candidates,
    )
    return east_postprocess(prob, geo, dest_hw, input_hw, post, entropy=entropy)


EAST = DetectorFamily(name="east", text_key="score", build_head=_head, make_targets=_targets,
                      build_loss=_loss, postprocess=_post)
