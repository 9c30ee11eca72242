"""EAST training targets (score map, RBOX or QUAD geometry, training mask) and their inverse.

Everything lives at 1/``stride`` of the input (stride 4: 128x128 for a 512x512 crop),
where the network predicts, and geometry is in input pixels.

Coordinate convention (shared with ``sdet.detectors.east.postprocess``): map pixel (row, col)
stands for the input point ``(x, y) = (col * stride, row * stride)``. That is where a
stack of stride-2 convolutions with "same" padding centres output pixel (row, col), and
what the reference code (argman/EAST) gets by labelling at full resolution and keeping
every 4th pixel. A pixel is positive when that point lies strictly inside a shrunk quad.

Labels, as the paper (Zhou et al., CVPR 2017):

* Each text region is a quad; polygons with more than 4 vertices are replaced by their
  minimum-area rectangle. The score map is 1 inside the quad shrunk by moving every
  edge's endpoints inward along the edge by ``0.3 * r_i``, where r_i is the shorter edge
  at vertex i; the longer pair of opposite edges is shrunk first (as the reference code).
* RBOX geometry (5 channels): distances from the point to the top, right, bottom and left
  edges of the quad's minimum-area rectangle, then its angle a in [-pi/4, pi/4). The
  rectangle's own frame maps to the image by x = cx + u cos a + v sin a,
  y = cy - u sin a + v cos a (the reference's rotation), with u along its "width" edge;
  positive a therefore turns the top edge up towards the right on screen. Of the four
  frames 90 degrees apart the one with a in [-pi/4, pi/4) is used, as the head predicts
  angles only in that range.
* QUAD geometry (8 channels): offsets (dx1, dy1, ..., dx4, dy4) from the point to the
  corners, ordered clockwise on screen starting at the corner nearest the rectangle's
  top-left, so that equal shapes get equal labels whatever the annotation order.
* ``training_mask`` is 0 over don't-care polygons and over quads whose shortest edge is
  below ``min_text_size`` (the reference code's rule); those get no positives either.
  Later polygons overwrite earlier ones where shrunk quads overlap.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import cv2
import numpy as np
import shapely

__all__ = [
    "GEO_CHANNELS",
    "as_quads",
    "shrink_quads",
    "rbox_params",
    "rbox_corners",
    "canonical_quads",
    "make_east_targets",
    "restore_rbox",
    "restore_quad",
    "decode_rbox",
    "decode_quad",
    "decode",
]

GEO_CHANNELS = {"rbox": 5, "quad": 8}
_FILL_SHIFT = 4  # sub-pixel bits for cv2.fillPoly on the don't-care mask


# ----------------------------------------------------------------------------- quad geometry


def as_quads(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 4, 2) float64: 4-vertex polygons as given, others as their minimum-area rectangle."""
    quads = np.zeros((len(polygons), 4, 2), dtype=np.float64)
    for i, polygon in enumerate(polygons):
        poly = np.asarray(polygon, dtype=np.float64)
        if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
            raise ValueError(f"polygon must have shape (N>=3, 2), got {poly.shape}")
        quads[i] = poly if len(poly) == 4 else cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32)))
    return quads


def _edge_lengths(quads: np.ndarray) -> np.ndarray:
    """(N, 4): length of edge i, from vertex i to vertex i + 1."""
    return np.linalg.norm(np.roll(quads, -1, axis=1) - quads, axis=2)


def _pull_together(quads: np.ndarray, r: np.ndarray, ratio: float, i: int, j: int) -> None:
    """Move vertices i and j towards each other along their edge by ratio * r_i and ratio * r_j."""
    d = quads[:, j] - quads[:, i]
    length = np.linalg.norm(d, axis=1, keepdims=True)
    unit = d / np.where(length > 0, length, 1.0)
    quads[:, i] += ratio * r[:, i, None] * unit
    quads[:, j] -= ratio * r[:, j, None] * unit


def shrink_quads(quads: np.ndarray, ratio: float = 0.3) -> np.ndarray:
    """EAST's score-map quads: every edge shortened at both ends by ratio * r_i, longer pair first.

    r_i is the shorter of the two edges meeting at vertex i, from the original quad;
    the second pair of edges is shortened from the already moved vertices, as in the
    reference code. Vectorised over all quads (N, 4, 2).
    """
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    edges = _edge_lengths(quads)
    r = np.minimum(edges, np.roll(edges, 1, axis=1))  # edges i and i-1 meet at vertex i
    pair_a, pair_b = ((0, 1), (3, 2)), ((0, 3), (1, 2))  # edges 0/2 and edges 3/1
    results = []
    for first, second in ((pair_a, pair_b), (pair_b, pair_a)):
        q = quads.copy()
        for i, j in first + second:
            _pull_together(q, r, ratio, i, j)
        results.append(q)
    long_first = edges[:, 0] + edges[:, 2] > edges[:, 1] + edges[:, 3]
    return np.where(long_first[:, None, None], results[0], results[1])


def rbox_params(quads: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-area rectangles of (N, 4, 2) quads: centre (N, 2), angle (N,), width (N,), height (N,).

    The angle is that of the "width" axis, chosen in [-pi/4, pi/4) (module docstring).
    """
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    if len(quads) == 0:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0)
    boxes = np.stack([cv2.boxPoints(cv2.minAreaRect(q.astype(np.float32))) for q in quads]).astype(np.float64)
    e0, e1 = boxes[:, 1] - boxes[:, 0], boxes[:, 2] - boxes[:, 1]
    raw = np.arctan2(-e0[:, 1], e0[:, 0])  # angle of edge 0 in the frame's sense (y up)
    angle = np.mod(raw + np.pi / 4, np.pi / 2) - np.pi / 4
    quarter_turns = np.mod(np.round((raw - angle) / (np.pi / 2)).astype(np.int64), 4)
    along_e0 = quarter_turns % 2 == 0
    len0, len1 = np.linalg.norm(e0, axis=1), np.linalg.norm(e1, axis=1)
    width = np.where(along_e0, len0, len1)
    height = np.where(along_e0, len1, len0)
    return boxes.mean(axis=1), angle, width, height


def _rotate(u: np.ndarray, v: np.ndarray, angle: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Frame offsets (u, v) -> image offsets (x, y) with the reference's rotation."""
    cos, sin = np.cos(angle), np.sin(angle)
    return u * cos + v * sin, -u * sin + v * cos


def rbox_corners(centre: np.ndarray, angle: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """(N, 4, 2) corners top-left, top-right, bottom-right, bottom-left of the rectangles' frames."""
    half_w, half_h = (width / 2.0)[:, None], (height / 2.0)[:, None]
    u = np.concatenate([-half_w, half_w, half_w, -half_w], axis=1)
    v = np.concatenate([-half_h, -half_h, half_h, half_h], axis=1)
    x, y = _rotate(u, v, angle[:, None])
    return np.stack([x + centre[:, :1], y + centre[:, 1:]], axis=2)


def canonical_quads(quads: np.ndarray) -> np.ndarray:
    """Quads clockwise on screen (y down), starting at the corner nearest their rectangle's top-left."""
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    if len(quads) == 0:
        return quads.copy()
    nxt = np.roll(quads, -1, axis=1)
    shoelace = np.sum(quads[..., 0] * nxt[..., 1] - nxt[..., 0] * quads[..., 1], axis=1)
    quads = np.where((shoelace < 0)[:, None, None], quads[:, ::-1], quads)
    top_left = rbox_corners(*rbox_params(quads))[:, 0]
    start = np.argmin(np.linalg.norm(quads - top_left[:, None], axis=2), axis=1)
    order = (start[:, None] + np.arange(4)) % 4
    return quads[np.arange(len(quads))[:, None], order]


# ----------------------------------------------------------------------------- targets


def _positive_index(quads: np.ndarray, keep: np.ndarray, out_h: int, out_w: int, stride: int) -> np.ndarray:
    """(out_h, out_w) int32: 1 + index of the quad whose inside holds each sample point, else 0.

    Exact point-in-polygon tests (shapely) on each quad's bounding box: a pixel is
    positive only when its point is strictly inside, so every RBOX distance is >= 0.
    """
    index = np.zeros((out_h, out_w), dtype=np.int32)
    for i in np.flatnonzero(keep):
        poly = shapely.Polygon(quads[i])
        if not poly.is_valid:
            poly = shapely.make_valid(poly)
        lo = np.clip(np.ceil(quads[i].min(axis=0) / stride).astype(int), 0, [out_w - 1, out_h - 1])
        hi = np.clip(np.floor(quads[i].max(axis=0) / stride).astype(int), 0, [out_w - 1, out_h - 1])
        if np.any(hi < lo):
            continue
        cols, rows = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        inside = shapely.contains_xy(poly, cols * float(stride), rows * float(stride))
        index[rows[inside], cols[inside]] = i + 1
    return index


def make_east_targets(
    height: int,
    width: int,
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool],
    *,
    shrink: float = 0.3,
    min_text_size: float = 10,
    geometry: str = "rbox",
    stride: int = 4,
) -> Dict[str, np.ndarray]:
    """EAST labels for one image at 1/``stride`` resolution, all float32.

    Returns ``score_map`` (h, w), ``geo_map`` (5 or 8, h, w) and ``training_mask`` (h, w)
    with h = ceil(height / stride), w = ceil(width / stride), the network's output size.
    ``polygons`` are (N, 2) input-pixel coordinates; ``ignore`` marks don't-care regions.
    """
    if geometry not in GEO_CHANNELS:
        raise ValueError(f"geometry must be one of {sorted(GEO_CHANNELS)}, got '{geometry}'")
    if len(polygons) != len(ignore):
        raise ValueError(f"{len(polygons)} polygons but {len(ignore)} ignore flags")
    out_h, out_w = -(-height // stride), -(-width // stride)
    score_map = np.zeros((out_h, out_w), dtype=np.float32)
    geo_map = np.zeros((GEO_CHANNELS[geometry], out_h, out_w), dtype=np.float32)
    training_mask = np.ones((out_h, out_w), dtype=np.float32)
    if len(polygons) == 0:
        return {"score_map": score_map, "geo_map": geo_map, "training_mask": training_mask}

    quads = as_quads(polygons)
    too_small = _edge_lengths(quads).min(axis=1) < min_text_size
    dont_care = np.asarray(ignore, dtype=bool) | too_small
    scale = float(1 << _FILL_SHIFT) / stride
    for i in np.flatnonzero(dont_care):  # the original polygon, generously rasterised
        points = np.round(np.asarray(polygons[i], dtype=np.float64) * scale).astype(np.int32)
        cv2.fillPoly(training_mask, [points], 0.0, lineType=cv2.LINE_8, shift=_FILL_SHIFT)

    index = _positive_index(shrink_quads(quads, shrink), ~dont_care, out_h, out_w, stride)
    rows, cols = np.nonzero(index)
    if len(rows) == 0:
        return {"score_map": score_map, "geo_map": geo_map, "training_mask": training_mask}
    which = index[rows, cols] - 1
    score_map[rows, cols] = 1.0
    points = np.stack([cols, rows], axis=1).astype(np.float64) * stride
    if geometry == "rbox":
        centre, angle, box_w, box_h = (a[which] for a in rbox_params(quads))
        dx, dy = centre[:, 0] - points[:, 0], centre[:, 1] - points[:, 1]
        cos, sin = np.cos(angle), np.sin(angle)
        u, v = dx * cos - dy * sin, dx * sin + dy * cos  # the centre in the rectangle's frame
        distances = np.stack([box_h / 2 - v, box_w / 2 + u, box_h / 2 + v, box_w / 2 - u])  # top, right, bottom, left
        geo_map[:4, rows, cols] = np.maximum(distances, 0.0)  # >= 0 up to rounding: points are inside
        geo_map[4, rows, cols] = angle
    else:
        offsets = canonical_quads(quads)[which] - points[:, None, :]
        geo_map[:, rows, cols] = offsets.reshape(-1, 8).T
    return {"score_map": score_map, "geo_map": geo_map, "training_mask": training_mask}


# ----------------------------------------------------------------------------- decoding


def restore_rbox(points: np.ndarray, geo: np.ndarray) -> np.ndarray:
    """(K, 4, 2) corners TL, TR, BR, BL from (K, 2) sample points and their (K, 5) RBOX geometry."""
    top, right, bottom, left, angle = np.asarray(geo, dtype=np.float64).reshape(-1, 5).T
    u = np.stack([-left, right, right, -left], axis=1)
    v = np.stack([-top, -top, bottom, bottom], axis=1)
    x, y = _rotate(u, v, angle[:, None])
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.stack([x + points[:, :1], y + points[:, 1:]], axis=2)


def restore_quad(points: np.ndarray, geo: np.ndarray) -> np.ndarray:
    """(K, 4, 2) corners from (K, 2) sample points and their (K, 8) corner offsets."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    return points + np.asarray(geo, dtype=np.float64).reshape(-1, 4, 2)


def _decode(score_map: np.ndarray, geo_map: np.ndarray, score_thresh: float, stride: int, channels: int) -> np.ndarray:
    score_map = np.asarray(score_map)
    geo_map = np.asarray(geo_map)
    if score_map.ndim != 2 or geo_map.shape != (channels, *score_map.shape):
        raise ValueError(f"expected score (H, W) and geo ({channels}, H, W), got {score_map.shape} and {geo_map.shape}")
    rows, cols = np.nonzero(score_map > score_thresh)  # row-major: LA-NMS relies on raster order
    points = np.stack([cols, rows], axis=1).astype(np.float64) * stride
    values = geo_map[:, rows, cols].T
    corners = restore_rbox(points, values) if channels == 5 else restore_quad(points, values)
    return np.concatenate([corners.reshape(-1, 8), score_map[rows, cols, None].astype(np.float64)], axis=1)


def decode_rbox(score_map: np.ndarray, geo_map: np.ndarray, score_thresh: float = 0.8, stride: int = 4) -> np.ndarray:
    """(N, 9) float64 [x1, y1, ..., x4, y4, score] in input pixels, one row per pixel of
    ``score_map`` (H, W) above ``score_thresh`` (strict), in raster order; corners TL, TR,
    BR, BL of the predicted rectangle's frame. ``geo_map`` is (5, H, W)."""
    return _decode(score_map, geo_map, score_thresh, stride, 5)


def decode_quad(score_map: np.ndarray, geo_map: np.ndarray, score_thresh: float = 0.8, stride: int = 4) -> np.ndarray:
    """As :func:`decode_rbox` for QUAD geometry: ``geo_map`` is (8, H, W) corner offsets."""
    return _decode(score_map, geo_map, score_thresh, stride, 8)


def decode(score_map: np.ndarray, geo_map: np.ndarray, score_thresh: float = 0.8, stride: int = 4) -> np.ndarray:
    """:func:`decode_rbox` or :func:`decode_quad`, chosen by the number of geometry channels."""
    channels = np.asarray(geo_map).shape[0]
    if channels not in (5, 8):
        raise ValueError(f"geo_map must have 5 (RBOX) or 8 (QUAD) channels, got {channels}")
    return _decode(score_map, geo_map, score_thresh, stride, channels)
