"""ICDAR2015 (RRC Challenge 4, task 1) IoU protocol, reproducing the official script's numbers.

The official script builds its polygons with the ``Polygon`` (GPC) library, which this module
mimics with shapely 2:

* a polygon's area is the absolute shoelace area of its points as given (a self-intersecting
  "bow-tie" quad therefore has the *difference* of its two lobes as area);
* an intersection counts every lobe of a self-intersecting polygon (``make_valid``);
* IoU = inter / (area_det + area_gt - inter), and 0 when that union is exactly 0;
* a detection is don't-care when inter(don't-care GT, det) / area_det > 0.5 (0 when area_det is 0);
* matching is greedy, one-to-one, GT in order then detections in order, needing IoU > 0.5;
* totals are summed over the whole set; P is 0 without care detections, R is 0 without care GT.

Regions may have any number of vertices (>= 3): quads give the official numbers, and polygon
datasets (CASIA-10K, Total-Text, TD500 rotated rectangles) use the same rule unchanged. For the
variant DBNet reports on polygon datasets (invalid shapes dropped first) see
:func:`evaluate_polygon_iou`.

All geometry work is done in a few vectorised shapely calls over candidate pairs whose bounding
boxes overlap, so a 500-image test set scores in a fraction of a second.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import shapely

from sdet.metrics.result import GtRegion, ImageResult, MetricResult, credit_result, hmean

__all__ = ["GtRegion", "ImageResult", "MetricResult", "evaluate_icdar2015", "evaluate_polygon_iou", "shoelace_area"]


def _as_polygon_array(polygon: np.ndarray) -> np.ndarray:
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
    return pts


def shoelace_area(polygon: np.ndarray) -> float:
    """Absolute shoelace area of the vertices as given: the Polygon library's ``area()``."""
    x, y = polygon[:, 0], polygon[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0


def raw_polygons(polygons: List[np.ndarray]) -> np.ndarray:
    """Shapely polygons of the vertices exactly as given (possibly invalid), one per input."""
    geoms = np.empty(len(polygons), dtype=object)
    by_size: Dict[int, List[int]] = {}
    for i, pts in enumerate(polygons):
        by_size.setdefault(len(pts), []).append(i)
    for idx in by_size.values():  # one vectorised constructor call per vertex count
        geoms[idx] = shapely.polygons(np.stack([polygons[i] for i in idx]))
    return geoms


def _geometries(polygons: List[np.ndarray], repair: str = "make_valid") -> np.ndarray:
    """Valid shapely geometries for intersections.

    ``make_valid`` keeps every lobe of a self-intersecting ring (what the Polygon library of the
    ICDAR2015 script does); ``buffer0`` is shapely's ``buffer(0)``, which the Total-Text script
    applies before intersecting (it may drop a lobe).
    """
    geoms = raw_polygons(polygons)
    if repair == "buffer0":  # to every polygon, as the script does (it reorders valid rings too)
        return shapely.buffer(geoms, 0)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    return geoms


def bboxes(polygons: List[np.ndarray]) -> np.ndarray:
    if not polygons:
        return np.zeros((0, 4))
    return np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polygons])


def candidate_pairs(gt_boxes: np.ndarray, det_boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Index pairs whose boxes overlap with positive area; all other pairs intersect in area 0."""
    g, d = gt_boxes[:, None, :], det_boxes[None, :, :]
    overlap = (g[..., 0] < d[..., 2]) & (d[..., 0] < g[..., 2]) & (g[..., 1] < d[..., 3]) & (d[..., 1] < g[..., 3])
    return np.nonzero(overlap)


def _greedy_matches(iou: np.ndarray, gt_care: np.ndarray, det_care: np.ndarray, threshold: float) -> int:
    """The official loop: each care GT, in order, takes the first free care det with IoU > threshold."""
    free = det_care.copy()
    matched = 0
    for g in np.flatnonzero(gt_care):
        hits = np.flatnonzero(free & (iou[g] > threshold))
        if hits.size:
            free[hits[0]] = False
            matched += 1
    return matched


def flatten_polygons(per_image: List[Sequence[np.ndarray]]) -> Tuple[List[np.ndarray], List[int]]:
    """All polygons in one list, with each image's start offset (plus the end)."""
    polygons: List[np.ndarray] = []
    starts = [0]
    for image_polygons in per_image:
        polygons.extend(_as_polygon_array(p) for p in image_polygons)
        starts.append(len(polygons))
    return polygons, starts


def check_known_images(gt: Mapping[str, object], det: Mapping[str, object]) -> None:
    """Detections for an image absent from the ground truth are refused, as the official scripts do."""
    unknown = [k for k in det if k not in gt]
    if unknown:
        raise ValueError(f"detections for images not in the ground truth: {sorted(unknown)[:5]}")


class FlatSet(NamedTuple):
    """A scored set's GT and detected polygons in two flat lists; image i owns [start[i], start[i+1])."""

    image_ids: List[str]
    gt_polys: List[np.ndarray]
    gt_start: List[int]
    gt_dont_care: np.ndarray
    det_polys: List[np.ndarray]
    det_start: List[int]


def flatten_set(
    gt: Mapping[str, Sequence[GtRegion]], det: Mapping[str, Sequence[np.ndarray]], image_ids: Optional[List[str]] = None
) -> FlatSet:
    """Check the detections' images, then flatten `image_ids` (default: every GT image, in order)."""
    check_known_images(gt, det)
    ids = list(gt) if image_ids is None else image_ids
    gt_polys, gt_start = flatten_polygons([[r.polygon for r in gt[i]] for i in ids])
    det_polys, det_start = flatten_polygons([det.get(i, ()) for i in ids])
    gt_dc = np.array([r.dont_care for i in ids for r in gt[i]], dtype=bool)
    return FlatSet(ids, gt_polys, gt_start, gt_dc, det_polys, det_start)


def pair_intersections(
    gt_polys: List[np.ndarray], gt_start: List[int], det_polys: List[np.ndarray], det_start: List[int],
    repair: str = "make_valid", det_first: bool = False,
) -> Tuple[np.ndarray, np.ndarray, List[int], np.ndarray]:
    """Same-image (gt, det) pairs whose boxes overlap, grouped by image, and their intersection areas."""
    gt_boxes, det_boxes = bboxes(gt_polys), bboxes(det_polys)
    pair_g: List[np.ndarray] = [np.zeros(0, dtype=np.intp)]
    pair_d: List[np.ndarray] = [np.zeros(0, dtype=np.intp)]
    pair_start = [0]
    for i in range(len(gt_start) - 1):
        g0, d0 = gt_start[i], det_start[i]
        gi, di = candidate_pairs(gt_boxes[g0:gt_start[i + 1]], det_boxes[d0:det_start[i + 1]])
        pair_g.append(gi + g0)
        pair_d.append(di + d0)
        pair_start.append(pair_start[-1] + len(gi))
    pg, pd = np.concatenate(pair_g), np.concatenate(pair_d)
    inter = np.zeros(0)
    if pg.size:  # one vectorised GEOS call for the whole set
        g, d = _geometries(gt_polys, repair)[pg], _geometries(det_polys, repair)[pd]
        # GEOS's result can differ in the last bits with the operand order; ``det_first`` follows
        # scripts that write det.intersection(gt).
        inter = shapely.area(shapely.intersection(d, g) if det_first else shapely.intersection(g, d))
    return pg, pd, pair_start, inter


def _image_result(n_gt_all: int, n_det_all: int, gt_care: np.ndarray, det_care: np.ndarray, matched: int) -> ImageResult:
    n_gt, n_det = int(gt_care.sum()), int(det_care.sum())
    if n_gt == 0:  # the official per-sample convention
        recall, precision = 1.0, (0.0 if n_det > 0 else 1.0)
    else:
        recall, precision = matched / n_gt, (matched / n_det if n_det else 0.0)
    return ImageResult(
        num_gt=n_gt, num_det=n_det, num_matched=matched,
        num_gt_dont_care=n_gt_all - n_gt, num_det_dont_care=n_det_all - n_det,
        precision=precision, recall=recall, hmean=hmean(precision, recall),
    )


def evaluate_icdar2015(
    gt: Mapping[str, Sequence[GtRegion]],
    det: Mapping[str, Sequence[np.ndarray]],
    iou_threshold: float = 0.5,
    area_precision_threshold: float = 0.5,
) -> MetricResult:
    """Score detections against ground truth exactly as the official ICDAR2015 script does.

    ``gt`` maps image id -> regions (every image of the set, even ones without regions);
    ``det`` maps image id -> polygons in the order written, and may omit images (no detections).
    A detection for an image absent from ``gt`` is a ValueError, as the official script refuses it.
    """
    image_ids, gt_polys, gt_start, gt_dc, det_polys, det_start = flatten_set(gt, det)
    gt_area = np.array([shoelace_area(p) for p in gt_polys])
    det_area = np.array([shoelace_area(p) for p in det_polys])

    pg, pd, pair_start, inter = pair_intersections(gt_polys, gt_start, det_polys, det_start)
    union = det_area[pd] + gt_area[pg] - inter
    pair_iou = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)

    # Don't-care detections: inter with a don't-care GT over the det's area above the threshold
    # (a zero-area detection has precision 0, so is never don't-care).
    area_precision = np.divide(inter, det_area[pd], out=np.zeros_like(inter), where=det_area[pd] != 0)
    det_dc = np.zeros(len(det_polys), dtype=bool)
    det_dc[pd[gt_dc[pg] & (area_precision > area_precision_threshold)]] = True

    per_image: Dict[str, ImageResult] = {}
    for i, image_id in enumerate(image_ids):
        g0, g1, d0, d1 = gt_start[i], gt_start[i + 1], det_start[i], det_start[i + 1]
        gt_care, det_care = ~gt_dc[g0:g1], ~det_dc[d0:d1]
        iou = np.zeros((g1 - g0, d1 - d0))
        sel = slice(pair_start[i], pair_start[i + 1])
        iou[pg[sel] - g0, pd[sel] - d0] = pair_iou[sel]
        matched = _greedy_matches(iou, gt_care, det_care, iou_threshold)
        per_image[image_id] = _image_result(g1 - g0, d1 - d0, gt_care, det_care, matched)

    matched = sum(r.num_matched for r in per_image.values())
    return credit_result(per_image, matched, matched)


def _is_simple_valid(polygons: List[np.ndarray]) -> np.ndarray:
    geoms = raw_polygons(polygons)
    return shapely.is_valid(geoms) & shapely.is_simple(geoms) if len(polygons) else np.zeros(0, dtype=bool)


def evaluate_polygon_iou(
    gt: Mapping[str, Sequence[GtRegion]],
    det: Mapping[str, Sequence[np.ndarray]],
    iou_threshold: float = 0.5,
    area_precision_threshold: float = 0.5,
) -> MetricResult:
    """The IoU protocol as DBNet's evaluator runs it for Total-Text, MSRA-TD500 and CTW1500.

    It is the ICDAR2015 rule (greedy one-to-one, IoU > 0.5, don't-care detections above 0.5 of
    their area inside a ``###`` region) on polygons of any vertex count, except that a GT or
    detected polygon that shapely finds invalid or not simple (self-intersecting, degenerate)
    is dropped before matching and counts nowhere - which is what DBNet's
    ``DetectionIoUEvaluator`` does and why its numbers differ from the ICDAR2015 script's on
    such shapes.
    """
    kept_gt: Dict[str, List[GtRegion]] = {}
    for image_id, regions in gt.items():
        regions = list(regions)
        ok = _is_simple_valid([_as_polygon_array(r.polygon) for r in regions])
        kept_gt[image_id] = [r for r, keep in zip(regions, ok) if keep]
    kept_det: Dict[str, List[np.ndarray]] = {}
    for image_id, polygons in det.items():
        polygons = [_as_polygon_array(p) for p in polygons]
        ok = _is_simple_valid(polygons)
        kept_det[image_id] = [p for p, keep in zip(polygons, ok) if keep]
    return evaluate_icdar2015(kept_gt, kept_det, iou_threshold, area_precision_threshold)
