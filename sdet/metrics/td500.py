"""MSRA-TD500: the dataset's original rotated-rectangle rule, and the IoU rule most papers use.

``td500`` - the rule of the MSRA-TD500 paper (Yao et al., CVPR 2012), as sdet implements it:

* every region is a rotated rectangle: GT boxes already are; a detected polygon is replaced by
  its minimum-area enclosing rectangle (shapely's ``oriented_envelope``, the same rectangle as
  ``cv2.minAreaRect``);
* a rectangle's angle is the direction of its *long* side, taken modulo pi (text lines have no
  head or tail), so the angle difference of two rectangles lies in [0, pi/2]; when either
  rectangle is a square its long side is undefined and the difference is taken modulo pi/2;
* a detection matches a GT when IoU > 0.5 **and** angle difference < pi/8 (both strict);
  ``overlap="rotated"`` (default) takes the IoU of the rotated rectangles themselves,
  ``overlap="axis-aligned"`` that of each rectangle turned about its centre to lie along the x
  axis (our recollection of the paper, which speaks of the overlap of "axis oriented
  versions" of the rectangles; neither the paper's text nor the official evaluation code was
  available to check, so pick the variant you compare against and say which);
* one-to-one, greedy: care GTs in order each take the first still-free detection that matches;
* difficult GTs (``difficult=1``, ``###`` in files) are don't care: they count nowhere, and a
  detection left unmatched that matches a difficult GT under the same test is not counted
  either (care GTs are served first, which can only help the detector);
* totals over the whole set: P = matches / counted detections, R = matches / care GTs.

``td500-iou`` is the ICDAR2015-style IoU 0.5 rule on the polygons as given (no angle test),
as DBNet's evaluator runs it (:func:`sdet.metrics.iou.evaluate_polygon_iou`).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import shapely

from sdet.metrics.iou import evaluate_polygon_iou, flatten_set, pair_intersections, raw_polygons, shoelace_area
from sdet.metrics.result import GtRegion, ImageResult, MetricResult, credit_result, hmean

OVERLAPS = ("rotated", "axis-aligned")


def rotated_rects(polygons: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-area rectangles (n, 4, 2), long-side angles in [0, pi) and an is-square flag.

    A degenerate polygon (no area) gets a zero-area rectangle at its first vertex and angle 0;
    it can never match (IoU 0).
    """
    n = len(polygons)
    rects = np.zeros((n, 4, 2))
    angles = np.zeros(n)
    square = np.zeros(n, dtype=bool)
    if n == 0:
        return rects, angles, square
    env = shapely.oriented_envelope(raw_polygons(polygons))
    ok = (shapely.get_type_id(env) == 3) & (shapely.area(env) > 0)  # polygons with area
    for i in np.flatnonzero(~ok):
        rects[i] = polygons[i][0]
    if ok.any():
        coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(env[ok]), return_index=True)
        starts = np.searchsorted(owner, np.arange(int(ok.sum())))
        corners = coords[starts[:, None] + np.arange(4)]  # a closed ring of 5 points: keep 4
        rects[ok] = corners
        e0, e1 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 1]
        l0, l1 = np.hypot(e0[:, 0], e0[:, 1]), np.hypot(e1[:, 0], e1[:, 1])
        side = np.where((l0 >= l1)[:, None], e0, e1)
        angles[ok] = np.arctan2(side[:, 1], side[:, 0]) % np.pi
        square[ok] = np.abs(l0 - l1) <= 1e-9 * np.maximum(l0, l1)
    return rects, angles, square


def angle_difference(a: np.ndarray, b: np.ndarray, square: np.ndarray) -> np.ndarray:
    """Difference of undirected line angles in [0, pi/2]; modulo pi/2 where ``square`` is set."""
    d = np.abs(a - b) % np.pi
    d = np.minimum(d, np.pi - d)
    q = d % (np.pi / 2)
    return np.where(square, np.minimum(q, np.pi / 2 - q), d)


def _axis_aligned(rects: np.ndarray) -> np.ndarray:
    """(n, 4) boxes: each rectangle turned about its centre so that its long side lies along x."""
    if len(rects) == 0:
        return np.zeros((0, 4))
    centre = rects.mean(axis=1)
    e0 = np.linalg.norm(rects[:, 1] - rects[:, 0], axis=1)
    e1 = np.linalg.norm(rects[:, 2] - rects[:, 1], axis=1)
    long_, short = np.maximum(e0, e1) / 2.0, np.minimum(e0, e1) / 2.0
    return np.stack([centre[:, 0] - long_, centre[:, 1] - short, centre[:, 0] + long_, centre[:, 1] + short], axis=1)


def _box_iou(g: np.ndarray, d: np.ndarray) -> np.ndarray:
    w = np.clip(np.minimum(g[:, None, 2], d[None, :, 2]) - np.maximum(g[:, None, 0], d[None, :, 0]), 0, None)
    h = np.clip(np.minimum(g[:, None, 3], d[None, :, 3]) - np.maximum(g[:, None, 1], d[None, :, 1]), 0, None)
    inter = w * h
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(g)[:, None] + area(d)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _rotated_iou(gt_rects: np.ndarray, gt_start: List[int], det_rects: np.ndarray, det_start: List[int]) -> List[np.ndarray]:
    """Per-image IoU tables of the rotated rectangles, one vectorised shapely call for the set."""
    gt_list, det_list = list(gt_rects), list(det_rects)
    pg, pd, pair_start, inter = pair_intersections(gt_list, gt_start, det_list, det_start)
    gt_area = np.array([shoelace_area(r) for r in gt_list])
    det_area = np.array([shoelace_area(r) for r in det_list])
    union = gt_area[pg] + det_area[pd] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    tables = []
    for i in range(len(gt_start) - 1):
        g0, d0 = gt_start[i], det_start[i]
        table = np.zeros((gt_start[i + 1] - g0, det_start[i + 1] - d0))
        sel = slice(pair_start[i], pair_start[i + 1])
        table[pg[sel] - g0, pd[sel] - d0] = iou[sel]
        tables.append(table)
    return tables


def evaluate_td500(
    gt: Mapping[str, Sequence[GtRegion]],
    det: Mapping[str, Sequence[np.ndarray]],
    iou_threshold: float = 0.5,
    angle_threshold: float = np.pi / 8,
    overlap: str = "rotated",
) -> MetricResult:
    """Score detections with the original MSRA-TD500 rule (see the module docstring).

    ``gt`` maps image id -> regions for every image; ``det`` maps image id -> polygons (quads
    from a detector) and may omit images. A detection for an unknown image is a ValueError.
    """
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
    image_ids, gt_polys, gt_start, gt_dc, det_polys, det_start = flatten_set(gt, det)
    gt_rects, gt_angle, gt_square = rotated_rects(gt_polys)
    det_rects, det_angle, det_square = rotated_rects(det_polys)
    if overlap == "rotated":
        tables = _rotated_iou(gt_rects, gt_start, det_rects, det_start)
    else:
        gt_boxes, det_boxes = _axis_aligned(gt_rects), _axis_aligned(det_rects)
        tables = [_box_iou(gt_boxes[gt_start[i]:gt_start[i + 1]], det_boxes[det_start[i]:det_start[i + 1]])
                  for i in range(len(image_ids))]

    per_image: Dict[str, ImageResult] = {}
    for i, image_id in enumerate(image_ids):
        g, d = slice(gt_start[i], gt_start[i + 1]), slice(det_start[i], det_start[i + 1])
        square = gt_square[g][:, None] | det_square[d][None, :]
        angle_ok = angle_difference(gt_angle[g][:, None], det_angle[d][None, :], square) < angle_threshold
        hits = (tables[i] > iou_threshold) & angle_ok
        care = ~gt_dc[g]
        free = np.ones(hits.shape[1], dtype=bool)
        matched = 0
        for row in np.flatnonzero(care):
            cols = np.flatnonzero(free & hits[row])
            if cols.size:
                free[cols[0]] = False
                matched += 1
        ignored = free & np.any(hits[~care], axis=0)  # unmatched detections of difficult text
        n_gt, n_det = int(care.sum()), int(hits.shape[1] - ignored.sum())
        precision = matched / n_det if n_det else 0.0
        recall = matched / n_gt if n_gt else 0.0
        per_image[image_id] = ImageResult(
            num_gt=n_gt, num_det=n_det, num_matched=matched,
            num_gt_dont_care=int((~care).sum()), num_det_dont_care=int(ignored.sum()),
            precision=precision, recall=recall, hmean=hmean(precision, recall),
        )
    matched_total = sum(r.num_matched for r in per_image.values())
    return credit_result(per_image, matched_total, matched_total)


# IoU > 0.5 one-to-one on the polygons as given: the TD500 number DBNet and most papers report.
evaluate_td500_iou = evaluate_polygon_iou
