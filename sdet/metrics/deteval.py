"""DetEval (Wolf & Jolion) as the ICDAR2013 official evaluation runs it, and the matching passes
it shares with the Total-Text protocol.

DetEval scores with two area ratios per (GT, detection) pair: *area recall* sigma =
inter / area(GT) and *area precision* tau = inter / area(det). It then finds matches in three
passes, always in this order, and credits each kind differently:

1. one-to-one - one GT and one detection that cover each other well enough;
2. one-to-many - a GT split into several detections ("pieces"); the GT is recalled only with
   the fragmentation weight 0.8 and each piece earns 0.8 of precision;
3. many-to-one - one detection covering several GTs.

The ICDAR2013 rule (the RRC "DetEval" script for Challenge 2, task 1), reproduced here:

* regions are axis-aligned rectangles ``xmin, ymin, xmax, ymax`` in inclusive pixel
  coordinates: a box's area is ``(xmax - xmin + 1) * (ymax - ymin + 1)`` and so is an
  intersection's; polygons (quads of a detector) are scored as their bounding rectangle;
* a pair *qualifies* when sigma >= 0.8 and tau >= 0.4;
* one-to-one: the pair qualifies, it is the only qualifying pair in its GT row and in its
  detection column (don't-care rows and columns included), the GT overlaps (inter > 0) exactly
  one care detection and the detection exactly one care GT, and the centre distance divided by
  the mean of the two diagonals is < 1; credit 1 and 1;
* one-to-many, GTs in order: the pieces are the unmatched care detections with tau >= 0.4; the
  GT must overlap at least 2 care detections and sum(sigma of the pieces), rounded to 4
  decimals, must reach 0.8; credit recall 0.8 and precision 0.8 per piece (a lone piece is a
  one-to-one match, credit 1 and 1);
* many-to-one, detections in order: the candidates are the unmatched care GTs with sigma >= 0.8;
  the detection must overlap at least 2 care GTs and sum(tau), rounded to 4 decimals, must reach
  0.4; credit recall 1.0 per GT and precision 1.0 (the script's ``MTYPE_OM_M`` is 1.0, not 0.8);
* don't care: a GT whose transcription is ``###`` (the current script; the 2013 original had no
  don't-care regions) neither counts nor matches, and a detection whose tau against any
  don't-care GT is > 0.4 (the area-precision threshold, strictly greater) counts nowhere;
* totals over the whole set: P = sum of precision credit / care detections, R = sum of recall
  credit / care GTs (0 when there is nothing to divide by).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from sdet.metrics.iou import check_known_images
from sdet.metrics.result import GtRegion, ImageResult, MetricResult, credit_result, hmean


@dataclass(frozen=True)
class FragmentRule:
    """How the one-to-many and many-to-one passes judge and credit a match.

    ``merge_candidate_threshold`` is the sigma a GT needs to take part in a many-to-one match:
    the recall threshold in ICDAR2013, the *precision* threshold in Total-Text's script.
    ``sum_decimals`` rounds the summed ratios before comparing (ICDAR2013: 4; Total-Text rounds
    each ratio to 2 decimals instead and compares the plain sum).
    """

    recall_threshold: float
    precision_threshold: float
    split_weight: float
    merge_weight: float
    merge_candidate_threshold: float
    sum_decimals: Optional[int] = None

    def total(self, values: np.ndarray) -> float:
        """Sum in index order (as the scripts' loops do), rounded when the rule says so."""
        s = 0.0
        for v in values.tolist():
            s += v
        return round(s, self.sum_decimals) if self.sum_decimals is not None else s


@dataclass
class MatchState:
    """Which regions are matched so far and the credit earned: shared by the three passes."""

    gt_matched: np.ndarray
    det_matched: np.ndarray
    recall_credit: float = 0.0
    precision_credit: float = 0.0

    @classmethod
    def empty(cls, num_gt: int, num_det: int) -> "MatchState":
        return cls(np.zeros(num_gt, dtype=bool), np.zeros(num_det, dtype=bool))


def one_to_many_pass(
    sigma: np.ndarray, tau: np.ndarray, overlaps: np.ndarray,
    gt_care: np.ndarray, det_care: np.ndarray, state: MatchState, rule: FragmentRule,
) -> None:
    """GTs in order, each split into the free care detections that lie mostly inside it.

    ``overlaps[g, d]`` says the pair overlaps at all; a split needs >= 2 overlapping care
    detections (matched or not). A lone piece is credited as one-to-one when its sigma reaches
    the recall threshold (the same test as the sum, which is then that one value).
    """
    for g in np.flatnonzero(gt_care):
        if state.gt_matched[g] or np.count_nonzero(overlaps[g] & det_care) < 2:
            continue
        pieces = np.flatnonzero(det_care & ~state.det_matched & (tau[g] >= rule.precision_threshold))
        if pieces.size == 0 or rule.total(sigma[g, pieces]) < rule.recall_threshold:
            continue
        state.gt_matched[g] = True
        state.det_matched[pieces] = True
        weight = 1.0 if pieces.size == 1 else rule.split_weight
        state.recall_credit += weight
        state.precision_credit += weight * pieces.size


def many_to_one_pass(
    sigma: np.ndarray, tau: np.ndarray, overlaps: np.ndarray,
    gt_care: np.ndarray, det_care: np.ndarray, state: MatchState, rule: FragmentRule,
) -> None:
    """Detections in order, each covering several free care GTs.

    ``overlaps[g, d]`` says the pair overlaps at all; a merge needs >= 2 overlapping care GTs.
    A lone candidate is credited as one-to-one only when it also reaches the recall threshold
    (always true in ICDAR2013, whose candidates are chosen by it; not in Total-Text).
    """
    for d in np.flatnonzero(det_care):
        if state.det_matched[d] or np.count_nonzero(overlaps[:, d] & gt_care) < 2:
            continue
        gts = np.flatnonzero(gt_care & ~state.gt_matched & (sigma[:, d] >= rule.merge_candidate_threshold))
        if gts.size == 0 or rule.total(tau[gts, d]) < rule.precision_threshold:
            continue
        if gts.size == 1 and sigma[gts[0], d] < rule.recall_threshold:
            continue
        state.det_matched[d] = True
        state.gt_matched[gts] = True
        weight = 1.0 if gts.size == 1 else rule.merge_weight
        state.recall_credit += weight * gts.size
        state.precision_credit += weight


# --- ICDAR2013 DetEval ----------------------------------------------------------------------

def _rects(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(n, 4) bounding rectangles xmin, ymin, xmax, ymax."""
    if not len(polygons):
        return np.zeros((0, 4))
    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    return np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in pts])


def _pixel_area(r: np.ndarray) -> np.ndarray:
    return (r[..., 2] - r[..., 0] + 1) * (r[..., 3] - r[..., 1] + 1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def rect_tables(gt_rects: np.ndarray, det_rects: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Area recall and area precision of every (GT, det) pair, with the +1 pixel convention."""
    g, d = gt_rects[:, None, :], det_rects[None, :, :]
    dx = np.minimum(g[..., 2], d[..., 2]) - np.maximum(g[..., 0], d[..., 0]) + 1
    dy = np.minimum(g[..., 3], d[..., 3]) - np.maximum(g[..., 1], d[..., 1]) + 1
    inter = np.where((dx >= 0) & (dy >= 0), dx * dy, 0.0)
    recall = _ratio(inter, np.broadcast_to(_pixel_area(g), inter.shape).astype(np.float64))
    precision = _ratio(inter, np.broadcast_to(_pixel_area(d), inter.shape).astype(np.float64))
    return recall, precision


def _centre_distance_ok(gt_rects: np.ndarray, det_rects: np.ndarray, threshold: float) -> np.ndarray:
    """2 * |centre(G) - centre(D)| / (diag(G) + diag(D)) < threshold, for every pair."""
    def centre(r: np.ndarray) -> np.ndarray:
        return np.stack([r[:, 0] + (r[:, 2] - r[:, 0] + 1) / 2.0, r[:, 1] + (r[:, 3] - r[:, 1] + 1) / 2.0], axis=1)

    def diag(r: np.ndarray) -> np.ndarray:
        return np.hypot(r[:, 2] - r[:, 0] + 1, r[:, 3] - r[:, 1] + 1)

    dist = np.linalg.norm(centre(gt_rects)[:, None, :] - centre(det_rects)[None, :, :], axis=2)
    norm = diag(gt_rects)[:, None] + diag(det_rects)[None, :]
    return _ratio(2.0 * dist, norm) < threshold


def _one_to_one_icdar2013(
    recall: np.ndarray, precision: np.ndarray, gt_care: np.ndarray, det_care: np.ndarray,
    gt_rects: np.ndarray, det_rects: np.ndarray, rule: FragmentRule, centre_threshold: float,
    state: MatchState,
) -> None:
    """All pairs at once: each qualifying row and column holds a single pair, so order cannot matter."""
    qualifies = (recall >= rule.recall_threshold) & (precision >= rule.precision_threshold)
    overlaps = recall > 0
    single_gt = np.count_nonzero(overlaps & det_care[None, :], axis=1) == 1
    single_det = np.count_nonzero(overlaps & gt_care[:, None], axis=0) == 1
    ok = (
        qualifies
        & (np.count_nonzero(qualifies, axis=1) == 1)[:, None] & (np.count_nonzero(qualifies, axis=0) == 1)[None, :]
        & (gt_care & single_gt)[:, None] & (det_care & single_det)[None, :]
    )
    if ok.any():
        ok &= _centre_distance_ok(gt_rects, det_rects, centre_threshold)
    g, d = np.nonzero(ok)
    state.gt_matched[g] = True
    state.det_matched[d] = True
    state.recall_credit += float(g.size)
    state.precision_credit += float(g.size)


def _image_result(n_gt_all: int, n_det_all: int, gt_care: np.ndarray, det_care: np.ndarray, state: MatchState) -> ImageResult:
    n_gt, n_det = int(gt_care.sum()), int(det_care.sum())
    if n_gt == 0:  # the official per-sample convention
        recall, precision = 1.0, (0.0 if n_det_all > 0 else 1.0)
    else:
        recall = state.recall_credit / n_gt
        precision = state.precision_credit / n_det if n_det else 0.0
    return ImageResult(
        num_gt=n_gt, num_det=n_det, num_matched=int(np.count_nonzero(state.gt_matched & gt_care)),
        num_gt_dont_care=n_gt_all - n_gt, num_det_dont_care=n_det_all - n_det,
        precision=precision, recall=recall, hmean=hmean(precision, recall),
    )


def evaluate_deteval(
    gt: Mapping[str, Sequence[GtRegion]],
    det: Mapping[str, Sequence[np.ndarray]],
    area_recall: float = 0.8,
    area_precision: float = 0.4,
    centre_distance_threshold: float = 1.0,
    split_weight: float = 0.8,
    merge_weight: float = 1.0,
) -> MetricResult:
    """Score detections with the ICDAR2013 DetEval rule (see the module docstring).

    ``gt`` maps image id -> regions for every image of the set; ``det`` maps image id ->
    polygons (any vertex count; their bounding rectangles are scored) and may omit images
    (no detections). A detection for an image absent from ``gt`` is a ValueError.
    """
    check_known_images(gt, det)
    rule = FragmentRule(
        recall_threshold=area_recall, precision_threshold=area_precision,
        split_weight=split_weight, merge_weight=merge_weight,
        merge_candidate_threshold=area_recall, sum_decimals=4,
    )
    per_image: Dict[str, ImageResult] = {}
    recall_credit = precision_credit = 0.0
    for image_id, regions in gt.items():
        gt_rects = _rects([r.polygon for r in regions])
        det_rects = _rects(list(det.get(image_id, ())))
        gt_care = np.array([not r.dont_care for r in regions], dtype=bool)
        recall, precision = rect_tables(gt_rects, det_rects)
        # A detection mostly inside a don't-care GT is dropped (tau strictly above the threshold).
        det_care = ~np.any((precision > area_precision) & ~gt_care[:, None], axis=0)
        state = MatchState.empty(len(gt_rects), len(det_rects))
        if len(gt_rects) and len(det_rects):
            _one_to_one_icdar2013(recall, precision, gt_care, det_care, gt_rects, det_rects, rule,
                                  centre_distance_threshold, state)
            overlaps = recall > 0
            one_to_many_pass(recall, precision, overlaps, gt_care, det_care, state, rule)
            many_to_one_pass(recall, precision, overlaps, gt_care, det_care, state, rule)
        per_image[image_id] = _image_result(len(gt_rects), len(det_rects), gt_care, det_care, state)
        recall_credit += state.recall_credit
        precision_credit += state.precision_credit
    return credit_result(per_image, recall_credit, precision_credit)
