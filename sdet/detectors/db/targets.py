"""DBNet training targets: shrink map/mask and threshold (border) map/mask.

Semantics follow the official DB code (``MakeSegDetectionData`` followed by
``MakeBorderMap``), quirks included, so that models trained here see the same
labels as the published ones. The border map is vectorised over all edges of a
polygon and computed only on the part of its dilated box inside the image.

Official behaviour reproduced on purpose:

* Polygons are clipped to the image, re-oriented, and ignored when their
  (clipped) area is below 1 or their bounding box is thinner than
  ``min_text_size``; ignored polygons also get no border map.
* The point-to-edge "distance" is not the true segment distance: a pixel gets
  the distance to the edge's *line* when it lies inside the circle whose
  diameter is the edge (Thales circle), and the distance to the nearer
  endpoint otherwise. Near short edges this overestimates the distance.
* Where that formula yields NaN (pixels exactly on a zero-length edge, or on
  an edge where ``1 - cos^2`` rounds below zero) the whole polygon leaves the
  pixel unchanged in the canvas.
* Only the first piece of a shrink or dilation that splits is used.

PaddleOCR differs: it builds the border map before validation (so tiny
polygons get one), and retries larger shrink ratios on a split.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

__all__ = [
    "make_db_targets",
    "validate_polygons",
    "shrink_distance",
    "offset_polygon",
    "shrink_polygon",
    "dilate_polygon",
]

# Pixels whose squared distance to some edge is below this fraction of the
# longest squared edge length are recomputed with the official formula, so
# that its rounding-induced NaNs appear exactly where the official code has them.
_NEAR_EDGE_REL = 1e-9


def shrink_distance(polygon: np.ndarray, ratio: float) -> float:
    """Vatti offset D = A (1 - r^2) / L used both to shrink and to dilate in DB."""
    shape = Polygon(polygon)
    return float(shape.area * (1.0 - ratio * ratio) / shape.length)


def offset_polygon(polygon: np.ndarray, distance: float) -> list[np.ndarray]:
    """All pieces of a round-joined offset (positive grows), as int64 (M, 2).

    pyclipper works on integer coordinates: float inputs are truncated, as in
    the official code.
    """
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(np.asarray(polygon).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return [np.asarray(path, dtype=np.int64).reshape(-1, 2) for path in offset.Execute(distance)]


def shrink_polygon(polygon: np.ndarray, ratio: float = 0.4) -> Optional[np.ndarray]:
    """The shrunk kernel of ``polygon`` (first piece), or None when it vanishes."""
    polygon = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if Polygon(polygon).length <= 0:
        return None
    pieces = offset_polygon(polygon, -shrink_distance(polygon, ratio))
    return pieces[0] if pieces else None


def dilate_polygon(polygon: np.ndarray, ratio: float = 1.5) -> Optional[np.ndarray]:
    """DB's ``unclip``: grow by D = A * ratio / L; first piece, None when empty.

    Post-processing uses ratio 1.5 to undo the training-time shrink; for the
    label-side dilation use ``offset_polygon(p, shrink_distance(p, 0.4))``.
    """
    polygon = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    shape = Polygon(polygon)
    if shape.length <= 0:
        return None
    pieces = offset_polygon(polygon, shape.area * ratio / shape.length)
    return pieces[0] if pieces else None


def validate_polygons(
    polygons: Sequence[np.ndarray], ignore: Sequence[bool], height: int, width: int
) -> tuple[list[np.ndarray], list[bool]]:
    """Clip to the image, ignore |area| < 1 and flip positive-area orientation.

    Returns float64 copies; inputs are never modified. The orientation flip
    matters because pyclipper's rounded joins depend on vertex order.
    """
    if len(polygons) != len(ignore):
        raise ValueError(f"{len(polygons)} polygons but {len(ignore)} ignore flags")
    out_polys: list[np.ndarray] = []
    out_ignore: list[bool] = []
    for polygon, ignored in zip(polygons, ignore):
        poly = np.array(polygon, dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
            raise ValueError(f"polygon must have shape (N>=3, 2), got {poly.shape}")
        np.clip(poly, 0, (width - 1, height - 1), out=poly)
        nxt = np.concatenate((poly[1:], poly[:1]))
        area = float(np.dot(nxt[:, 0] - poly[:, 0], nxt[:, 1] + poly[:, 1])) / 2.0
        if area > 0:
            poly = poly[::-1].copy()
        out_polys.append(poly)
        out_ignore.append(bool(ignored) or abs(area) < 1)
    return out_polys, out_ignore


def make_db_targets(
    height: int,
    width: int,
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool],
    shrink_ratio: float = 0.4,
    min_text_size: int = 8,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
) -> dict[str, np.ndarray]:
    """DB labels for one image: float32 HxW ``shrink_map``, ``shrink_mask``,
    ``threshold_map`` and ``threshold_mask``.

    ``polygons`` are float (N, 2) pixel coordinates (may leave the image);
    ``ignore`` marks don't-care regions (e.g. ICDAR ``###``).
    """
    polys, ignored = validate_polygons(polygons, ignore, height, width)
    shrink_map, shrink_mask, threshold_map, threshold_mask = _new_maps(height, width, thresh_min)

    for poly, skip in zip(polys, ignored):
        extent = poly.max(axis=0) - poly.min(axis=0)
        if not skip and min(extent[0], extent[1]) >= min_text_size:
            distance = shrink_distance(poly, shrink_ratio)
            shrunk = offset_polygon(poly, -distance)
            if shrunk:
                cv2.fillPoly(shrink_map, [shrunk[0].astype(np.int32)], 1.0)  # first piece only, as DB
                _draw_border(poly, distance, threshold_map, threshold_mask, thresh_min, thresh_max)
                continue
        # ignored, tiny, or shrunk to nothing: don't care, and no border map
        cv2.fillPoly(shrink_mask, [poly.astype(np.int32)], 0.0)
    return {
        "shrink_map": shrink_map,
        "shrink_mask": shrink_mask,
        "threshold_map": threshold_map,
        "threshold_mask": threshold_mask,
    }


def _new_maps(height: int, width: int, thresh_min: float) -> tuple[np.ndarray, ...]:
    """shrink_map, shrink_mask, threshold_map, threshold_mask as views of one block.

    Page faults on fresh memory cost more than all the polygons of an image: one
    block stays on glibc's heap between calls where four separate maps are handed
    back to the OS, and when it is too big for that, calloc's untouched zero pages
    are free, so only the two maps that must be written in full fault in.
    """
    maps = np.zeros((4, height, width), dtype=np.float32)
    maps[1].fill(1.0)
    maps[2].fill(thresh_min)
    return tuple(maps)


def _draw_border(
    poly: np.ndarray,
    distance: float,
    threshold_map: np.ndarray,
    mask: np.ndarray,
    thresh_min: float,
    thresh_max: float,
) -> None:
    """Fill the dilated polygon in ``mask`` and raise ``threshold_map`` to
    thresh_min + (1 - clip(dist / D)) * (thresh_max - thresh_min) over its box.

    The official code takes the max of 1 - dist on a 0 canvas and rescales at
    the end; rescaling first is the same up to float32 rounding (max commutes
    with an increasing map, min with a decreasing one) and saves two passes.
    """
    padded = offset_polygon(poly, distance)[0]
    cv2.fillPoly(mask, [padded.astype(np.int32)], 1.0)
    x0, y0 = (int(v) for v in padded.min(axis=0))
    x1, y1 = (int(v) for v in padded.max(axis=0))
    img_h, img_w = threshold_map.shape
    cx0, cx1 = min(max(0, x0), img_w - 1), min(max(0, x1), img_w - 1)
    cy0, cy1 = min(max(0, y0), img_h - 1), min(max(0, y1), img_h - 1)
    # Same frame as the official code (origin at the dilated box corner) so
    # that every rounding, and hence every NaN, happens identically.
    local = poly - np.array([x0, y0], dtype=np.float64)
    xs = np.arange(cx0 - x0, cx1 - x0 + 1, dtype=np.float64)
    ys = np.arange(cy0 - y0, cy1 - y0 + 1, dtype=np.float64)
    dist = _official_edge_distance(xs, ys, local)
    scale = thresh_max - thresh_min
    value = (1.0 - np.clip(dist / distance, 0.0, 1.0)) * scale + thresh_min
    combine = np.fmax if scale >= 0 else np.fmin  # fmax/fmin skip NaN pixels, as the official fmax does
    region = threshold_map[cy0 : cy1 + 1, cx0 : cx1 + 1]
    combine(region, value, out=region, casting="unsafe")


def _official_edge_distance(xs: np.ndarray, ys: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Min over edges of the official point-to-edge formula on the grid ys x xs.

    Works on squared distances for all edges at once: the official branch test
    ``cosin < 0`` has the sign of ``L^2 - d1^2 - d2^2`` (computed in the same
    order, so it agrees bit for bit); inside the Thales circle the value is the
    line distance |cross| / L, outside it the nearer endpoint. Pixels almost on
    an edge are then redone with the literal formula to get its NaNs.
    """
    closed = np.concatenate([poly, poly[:1]])  # vertex i+1 of edge i is closed[i + 1]
    a, b = closed[:-1], closed[1:]
    len2 = (np.square(a[:, 0] - b[:, 0]) + np.square(a[:, 1] - b[:, 1]))[:, None, None]
    dx = xs[None, None, :] - closed[:, 0, None, None]  # (N+1, 1, W)
    dy = ys[None, :, None] - closed[:, 1, None, None]  # (N+1, H, 1)
    sq = np.square(dx) + np.square(dy)  # (N+1, H, W) squared distance to each vertex
    num = len2 - sq[:-1]
    num -= sq[1:]
    edge = b - a
    cross = edge[:, 1, None, None] * dx[:-1] - edge[:, 0, None, None] * dy[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.square(cross, out=cross)
        value /= len2  # squared line distance; NaN/inf only on zero-length edges
        np.copyto(value, np.minimum(sq[:-1], sq[1:]), where=num < 0)
        best2 = value.min(axis=0)  # NaN propagates like the official min
    dist = np.sqrt(best2)
    if not _exact_in_float64(poly):
        near = np.nonzero(best2 < _NEAR_EDGE_REL * float(len2.max()))
        if near[0].size:
            dist[near] = _literal_distance(xs[near[1]], ys[near[0]], a, b).min(axis=0)
    return dist


def _exact_in_float64(poly: np.ndarray) -> bool:
    """Integer vertices in a box under 4096 px: every official intermediate is
    exact or provably far from the ``1 - cos^2 < 0`` NaN, so no recheck is needed."""
    return bool(np.all(poly == np.round(poly))) and float(np.abs(poly).max()) < 4096


def _literal_distance(x: np.ndarray, y: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """The official law-of-cosines formula, op for op, for points (K,) and edges (N,)."""
    x1, y1, x2, y2 = (c[:, None] for c in (p1[:, 0], p1[:, 1], p2[:, 0], p2[:, 1]))
    sq1 = np.square(x - x1) + np.square(y - y1)
    sq2 = np.square(x - x2) + np.square(y - y2)
    len2 = np.square(x1 - x2) + np.square(y1 - y2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cosin = (len2 - sq1 - sq2) / (2 * np.sqrt(sq1 * sq2))
        square_sin = np.nan_to_num(1 - np.square(cosin))
        result = np.sqrt(sq1 * sq2 * square_sin / len2)
        outside = cosin < 0
        result[outside] = np.sqrt(np.fmin(sq1, sq2))[outside]
    return result
