"""EAST's locality-aware NMS written as plainly as possible: the yardstick for sdet's fast version.

It follows the reference ``locality_aware_nms.py`` of the EAST implementation: merge consecutive
rows (raster order) whose IoU with the running group exceeds the threshold, weighting corners by
score and summing the scores, then standard NMS over the merged groups. One shapely IoU per pair;
used by tests/test_postprocess_east.py and benchmarks/bench_lanms.py.
"""
from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon


def ref_iou(g: np.ndarray, p: np.ndarray) -> float:
    """The reference's rule: shapely IoU, 0 for invalid polygons or an empty union."""
    a, b = Polygon(g[:8].reshape(4, 2)), Polygon(p[:8].reshape(4, 2))
    if not a.is_valid or not b.is_valid:
        return 0.0
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return 0.0 if union == 0 else inter / union


def ref_lanms(quads: np.ndarray, thresh: float) -> np.ndarray:
    """LA-NMS written as plainly as possible, one row and one pair at a time."""
    groups = []
    current = None
    for row in quads:
        if current is not None and ref_iou(row, current) > thresh:
            weight = current[8] + row[8]
            merged = np.zeros(9)
            for k in range(8):
                merged[k] = (current[8] * current[k] + row[8] * row[k]) / weight
            merged[8] = weight
            current = merged
        else:
            if current is not None:
                groups.append(current)
            current = np.array(row, dtype=np.float64)
    if current is not None:
        groups.append(current)
    remaining = sorted(groups, key=lambda q: -q[8])  # stable: equal scores keep their order
    kept = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [q for q in remaining if ref_iou(best, q) <= thresh]
    return np.array(kept).reshape(-1, 9)
