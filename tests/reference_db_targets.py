"""Slow, literal restatement of the official DB label code (for tests and benchmarks).

Mirrors MhLiao/DB ``MakeSegDetectionData`` + ``MakeBorderMap`` step by step:
a Python loop over vertices for the area, one full-box distance map per edge,
crop to the image afterwards. Deliberately shares no code with
``sdet.detectors.db.targets`` so that the two can check each other.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon


def _signed_area(poly: np.ndarray) -> float:
    total = 0.0
    n = poly.shape[0]
    for i in range(n):
        j = (i + 1) % n
        total += (poly[j, 0] - poly[i, 0]) * (poly[j, 1] + poly[i, 1])
    return total / 2.0


def _offset(poly: np.ndarray, delta: float) -> list:
    pco = pyclipper.PyclipperOffset()
    pco.AddPath([tuple(pt) for pt in poly], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return pco.Execute(delta)


def _edge_distance(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The official law-of-cosines "distance" from every pixel to edge a-b."""
    d1 = np.square(xs - a[0]) + np.square(ys - a[1])
    d2 = np.square(xs - b[0]) + np.square(ys - b[1])
    d = np.square(a[0] - b[0]) + np.square(a[1] - b[1])
    with np.errstate(all="ignore"):
        cosin = (d - d1 - d2) / (2 * np.sqrt(d1 * d2))
        sin2 = np.nan_to_num(1 - np.square(cosin))
        out = np.sqrt(d1 * d2 * sin2 / d)
        out[cosin < 0] = np.sqrt(np.fmin(d1, d2))[cosin < 0]
    return out


def _border(poly: np.ndarray, shrink_ratio: float, canvas: np.ndarray, mask: np.ndarray) -> None:
    poly = poly.copy()
    shape = Polygon(poly)
    dist = shape.area * (1 - np.power(shrink_ratio, 2)) / shape.length
    padded = np.array(_offset(poly, dist)[0])
    cv2.fillPoly(mask, [padded.astype(np.int32)], 1.0)
    xmin, xmax = padded[:, 0].min(), padded[:, 0].max()
    ymin, ymax = padded[:, 1].min(), padded[:, 1].max()
    bw, bh = xmax - xmin + 1, ymax - ymin + 1
    poly[:, 0] = poly[:, 0] - xmin
    poly[:, 1] = poly[:, 1] - ymin
    xs = np.broadcast_to(np.linspace(0, bw - 1, num=bw).reshape(1, bw), (bh, bw))
    ys = np.broadcast_to(np.linspace(0, bh - 1, num=bh).reshape(bh, 1), (bh, bw))
    per_edge = np.zeros((poly.shape[0], bh, bw), dtype=np.float32)
    for i in range(poly.shape[0]):
        j = (i + 1) % poly.shape[0]
        per_edge[i] = np.clip(_edge_distance(xs, ys, poly[i], poly[j]) / dist, 0, 1)
    nearest = per_edge.min(axis=0)
    h, w = canvas.shape
    x0, x1 = min(max(0, xmin), w - 1), min(max(0, xmax), w - 1)
    y0, y1 = min(max(0, ymin), h - 1), min(max(0, ymax), h - 1)
    crop = nearest[y0 - ymin : y1 - ymax + bh, x0 - xmin : x1 - xmax + bw]
    canvas[y0 : y1 + 1, x0 : x1 + 1] = np.fmax(1 - crop, canvas[y0 : y1 + 1, x0 : x1 + 1])


def reference_db_targets(
    height: int,
    width: int,
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool],
    shrink_ratio: float = 0.4,
    min_text_size: int = 8,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
) -> dict[str, np.ndarray]:
    polys = [np.array(p, dtype=np.float64) for p in polygons]
    tags = [bool(t) for t in ignore]

    # validate_polygons: clip, then area check and orientation flip
    for p in polys:
        p[:, 0] = np.clip(p[:, 0], 0, width - 1)
        p[:, 1] = np.clip(p[:, 1], 0, height - 1)
    for i in range(len(polys)):
        area = _signed_area(polys[i])
        if abs(area) < 1:
            tags[i] = True
        if area > 0:
            polys[i] = polys[i][::-1, :]

    # MakeSegDetectionData
    gt = np.zeros((height, width), dtype=np.float32)
    mask = np.ones((height, width), dtype=np.float32)
    for i, p in enumerate(polys):
        ph = max(p[:, 1]) - min(p[:, 1])
        pw = max(p[:, 0]) - min(p[:, 0])
        if tags[i] or min(ph, pw) < min_text_size:
            cv2.fillPoly(mask, p.astype(np.int32)[np.newaxis, :, :], 0)
            tags[i] = True
            continue
        shape = Polygon(p)
        dist = shape.area * (1 - np.power(shrink_ratio, 2)) / shape.length
        shrunk = _offset(p, -dist)
        if shrunk == []:
            cv2.fillPoly(mask, p.astype(np.int32)[np.newaxis, :, :], 0)
            tags[i] = True
            continue
        cv2.fillPoly(gt, [np.array(shrunk[0]).reshape(-1, 2).astype(np.int32)], 1)

    # MakeBorderMap (after the seg step, so it sees the updated ignore tags)
    canvas = np.zeros((height, width), dtype=np.float32)
    tmask = np.zeros((height, width), dtype=np.float32)
    for i, p in enumerate(polys):
        if tags[i]:
            continue
        _border(p, shrink_ratio, canvas, tmask)
    canvas = canvas * (thresh_max - thresh_min) + thresh_min
    return {"shrink_map": gt, "shrink_mask": mask, "threshold_map": canvas, "threshold_mask": tmask}
