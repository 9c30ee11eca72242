"""DBNet post-processing: probability map -> text polygons in original-image pixels.

Behaviour follows PaddleOCR's ``DBPostProcess`` step for step (contour order,
corner order, the floor/ceil/int32 roundings, the ``min_size + 2`` check after
unclipping, the inclusive clip to ``dest_w``/``dest_h``), because models imported
from PaddleOCR must score the same hmean here as there. Pure numpy/OpenCV code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

from sdet.detectors.detection import Detection
from sdet.errors import UserError
from sdet.ops.geometry import order_quad

__all__ = [
    "DBPostProcessConfig",
    "db_postprocess",
    "db_postprocess_batch",
    "mini_box",
    "unclip",
]


@dataclass(frozen=True)
class DBPostProcessConfig:
    """Knobs of DB post-processing; defaults are PaddleOCR's det_db inference ones."""

    thresh: float = 0.3  # binarisation threshold on the probability map (strict >)
    box_thresh: float = 0.6  # drop regions whose mean probability is below this (DB's own code: 0.7)
    unclip_ratio: float = 1.5  # offset distance = area * ratio / perimeter
    max_candidates: int = 1000  # contours considered, in findContours order, before any filtering
    min_size: int = 3  # shortest side of the min-area rect, before (>=) and after (>= +2) unclipping
    box_type: Literal["quad", "poly"] = "quad"
    score_mode: Literal["fast", "slow"] = "fast"  # fast: mean in the quad; slow: mean in the contour
    use_dilation: bool = False  # dilate the bitmap with a 2x2 kernel before finding contours

    def __post_init__(self) -> None:
        if self.box_type not in ("quad", "poly"):
            raise UserError(f"DB post-process box_type must be 'quad' or 'poly', got {self.box_type!r}")
        if self.score_mode not in ("fast", "slow"):
            raise UserError(f"DB post-process score_mode must be 'fast' or 'slow', got {self.score_mode!r}")
        if self.unclip_ratio <= 0:
            raise UserError(f"DB post-process unclip_ratio must be > 0, got {self.unclip_ratio}")
        if self.max_candidates < 1:
            raise UserError(f"DB post-process max_candidates must be >= 1, got {self.max_candidates}")


def mini_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``points`` as an ordered float32 quad, plus its short side.

    The short side comes from ``minAreaRect``'s own size, not the corners, as upstream.
    """
    rect = cv2.minAreaRect(np.asarray(points).reshape(-1, 1, 2))
    return order_quad(cv2.boxPoints(rect)), float(min(rect[1]))


def unclip(polygon: np.ndarray, ratio: float) -> np.ndarray:
    """Grow a shrunk text kernel back by distance ``area * ratio / perimeter``.

    Uses a round-joined clipper offset (coordinates are truncated to integers by
    pyclipper, exactly as in PaddleOCR). Returns the (M, 2) int32 expanded polygon,
    or an empty (0, 2) array when the offset is degenerate or splits into several
    pieces (PaddleOCR drops those candidates too).
    """
    pts = np.asarray(polygon).reshape(-1, 2)
    empty = np.zeros((0, 2), dtype=np.int32)
    if len(pts) < 3:
        return empty
    shape = Polygon(pts)
    if shape.length == 0:
        return empty
    distance = shape.area * ratio / shape.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(pts, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(distance)
    if len(paths) != 1 or len(paths[0]) == 0:
        return empty
    return np.asarray(paths[0], dtype=np.int32).reshape(-1, 2)


def _region(points: np.ndarray, height: int, width: int) -> tuple[slice, slice, np.ndarray]:
    """Bounding-box slices and polygon mask over them, as PaddleOCR's box_score_fast/slow.

    floor/ceil of the extent clipped into the map, then the shifted polygon is
    truncated to int32 for fillPoly. Shared by the score and the entropy so both
    average over exactly the same pixels.
    """
    pts = np.asarray(points).reshape(-1, 2).copy()
    xmin = int(np.clip(np.floor(pts[:, 0].min()), 0, width - 1))
    xmax = int(np.clip(np.ceil(pts[:, 0].max()), 0, width - 1))
    ymin = int(np.clip(np.floor(pts[:, 1].min()), 0, height - 1))
    ymax = int(np.clip(np.ceil(pts[:, 1].max()), 0, height - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    pts[:, 0] = pts[:, 0] - xmin
    pts[:, 1] = pts[:, 1] - ymin
    cv2.fillPoly(mask, pts.reshape(1, -1, 2).astype(np.int32), 1)
    return slice(ymin, ymax + 1), slice(xmin, xmax + 1), mask


def _region_means(
    prob: np.ndarray, entropy: Optional[np.ndarray], points: np.ndarray
) -> tuple[float, Optional[float]]:
    """Mean probability (and mean entropy, if given) inside the polygon ``points``."""
    ys, xs, mask = _region(points, prob.shape[0], prob.shape[1])
    score = cv2.mean(prob[ys, xs], mask)[0]
    ent = None if entropy is None else float(cv2.mean(entropy[ys, xs], mask)[0])
    return float(score), ent


def _rescale(box: np.ndarray, src_hw: tuple[int, int], dest_hw: tuple[int, int]) -> np.ndarray:
    """Map network-input pixels to original pixels: round half-to-even, clip to [0, dest] inclusive.

    Arithmetic stays in the box's own dtype (float32 quads, integer polygons ->
    float64) and divides before multiplying, so results round like PaddleOCR's.
    """
    (height, width), (dest_h, dest_w) = src_hw, dest_hw
    out = np.array(box)
    out[:, 0] = np.clip(np.round(out[:, 0] / width * dest_w), 0, dest_w)
    out[:, 1] = np.clip(np.round(out[:, 1] / height * dest_h), 0, dest_h)
    return out.astype(np.float32)


def _find_contours(bitmap: np.ndarray) -> Sequence[np.ndarray]:
    contours, _ = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return contours


def _score_and_expand(
    prob: np.ndarray,
    entropy: Optional[np.ndarray],
    scored: np.ndarray,
    region: np.ndarray,
    bitmap_shape: tuple[int, ...],
    dest_hw: tuple[int, int],
    cfg: DBPostProcessConfig,
    as_quad: bool,
) -> Optional[Detection]:
    """The steps quads and polygons share: box score, unclip, size check, rescale."""
    score, ent = _region_means(prob, entropy, scored)
    if cfg.box_thresh > score:
        return None
    expanded = unclip(region, cfg.unclip_ratio)
    if len(expanded) == 0:
        return None
    box, short_side = mini_box(expanded)
    if short_side < cfg.min_size + 2:
        return None
    return Detection(_rescale(box if as_quad else expanded, bitmap_shape, dest_hw), score, ent)


def _quads_from_bitmap(
    prob: np.ndarray,
    bitmap: np.ndarray,
    dest_hw: tuple[int, int],
    cfg: DBPostProcessConfig,
    entropy: Optional[np.ndarray],
) -> list[Detection]:
    detections: list[Detection] = []
    for contour in _find_contours(bitmap)[: cfg.max_candidates]:
        quad, short_side = mini_box(contour)
        if short_side < cfg.min_size:
            continue
        scored = quad if cfg.score_mode == "fast" else contour
        detection = _score_and_expand(prob, entropy, scored, quad, bitmap.shape, dest_hw, cfg, as_quad=True)
        if detection is not None:
            detections.append(detection)
    return detections


def _polygons_from_bitmap(
    prob: np.ndarray,
    bitmap: np.ndarray,
    dest_hw: tuple[int, int],
    cfg: DBPostProcessConfig,
    entropy: Optional[np.ndarray],
) -> list[Detection]:
    # As upstream: no min_size check before scoring, and the score is always the
    # "fast" one over the simplified polygon, whatever score_mode says.
    detections: list[Detection] = []
    for contour in _find_contours(bitmap)[: cfg.max_candidates]:
        epsilon = 0.002 * cv2.arcLength(contour, True)
        points = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
        if len(points) < 4:
            continue
        detection = _score_and_expand(prob, entropy, points, points, bitmap.shape, dest_hw, cfg, as_quad=False)
        if detection is not None:
            detections.append(detection)
    return detections


def db_postprocess(
    prob: np.ndarray,
    dest_hw: tuple[int, int],
    cfg: DBPostProcessConfig,
    entropy: Optional[np.ndarray] = None,
) -> list[Detection]:
    """Turn one DB probability map into detections in original-image coordinates.

    ``prob`` is (H, W) at the resized network-input size (no padding); ``dest_hw``
    is the original (height, width). ``entropy``, an optional (H, W) map of binary
    entropy in bits, is averaged over the same pixels as each detection's score.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be (H, W), got shape {prob.shape}")
    if prob.dtype not in (np.float32, np.float64):
        prob = prob.astype(np.float32)
    if entropy is not None:
        entropy = np.asarray(entropy)
        if entropy.shape != prob.shape:
            raise ValueError(f"entropy shape {entropy.shape} != prob shape {prob.shape}")
        if entropy.dtype not in (np.float32, np.float64):
            entropy = entropy.astype(np.float32)
    dest = (int(dest_hw[0]), int(dest_hw[1]))
    if dest[0] <= 0 or dest[1] <= 0:
        raise ValueError(f"dest_hw must be positive, got {dest_hw}")

    bitmap = (prob > cfg.thresh).astype(np.uint8)
    if cfg.use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), dtype=np.uint8))
    if cfg.box_type == "poly":
        return _polygons_from_bitmap(prob, bitmap, dest, cfg, entropy)
    return _quads_from_bitmap(prob, bitmap, dest, cfg, entropy)


def db_postprocess_batch(
    probs: np.ndarray,
    dest_hws: Sequence[tuple[int, int]],
    cfg: DBPostProcessConfig,
    entropies: Optional[np.ndarray] = None,
) -> list[list[Detection]]:
    """``db_postprocess`` over a batch: ``probs`` (B, H, W) or (B, 1, H, W), one dest size each."""
    probs = np.asarray(probs)
    if probs.ndim == 4 and probs.shape[1] == 1:
        probs = probs[:, 0]
    if probs.ndim != 3:
        raise ValueError(f"probs must be (B, H, W) or (B, 1, H, W), got shape {probs.shape}")
    if len(dest_hws) != len(probs):
        raise ValueError(f"got {len(dest_hws)} dest sizes for a batch of {len(probs)}")
    if entropies is not None:
        entropies = np.asarray(entropies)
        if entropies.ndim == 4 and entropies.shape[1] == 1:
            entropies = entropies[:, 0]
        if entropies.shape != probs.shape:
            raise ValueError(f"entropies shape {entropies.shape} != probs shape {probs.shape}")
    return [
        db_postprocess(probs[i], tuple(dest_hws[i]), cfg, None if entropies is None else entropies[i])
        for i in range(len(probs))
    ]
