"""Total-Text: the authors' polygon DetEval (``Deteval.py``) and the IoU variant DBNet reports.

``total-text`` follows the official ``Evaluation_Protocol/Python_scripts/Deteval.py`` of
cs-chan/Total-Text-Dataset (its latest revision, with the fixed one-to-one test):

* only images that have a detection file are scored - a GT image without one is skipped
  entirely, an empty detection file scores its GTs with zero detections (``all_gt_images=True``
  scores every GT image instead, which is what sdet's own evaluator does since it always has a
  detection list per image);
* don't care first: a detection with inter / (area(det) + 1) > 0.5 against any don't-care GT
  (orientation or transcription ``#``; sdet also takes ``###``) is dropped and counts nowhere;
  then the don't-care GTs are removed;
* sigma = inter / area(GT) and tau = inter / area(det), each rounded to 2 decimals; polygons are
  intersected after shapely's ``buffer(0)`` and their areas are the shoelace areas as given;
* one-to-one, GTs in order: exactly one detection with sigma > 0.7 and exactly one with
  tau > 0.6 in the GT's row, and each of those detections' columns holds exactly one GT over the
  same threshold; credit 1 and 1 (the detection of the sigma test is the one marked matched);
* one-to-many and many-to-one: the DetEval passes of :mod:`sdet.metrics.deteval` with tr = 0.7,
  tp = 0.6, weight 0.8 for both kinds, many-to-one candidates needing sigma >= tp (not tr), a
  lone candidate of a merge needing sigma >= tr as well, and no rounding of the sums;
* totals over the scored images: P = precision credit / kept detections, R = recall credit /
  care GTs; hmean = 2PR / (P + R) (the script prints only P and R).

The script reads integer coordinates with y first (``y0,x0,y1,x1,...``); sdet's functions take
(x, y) vertices and any float coordinates (see :mod:`sdet.metrics.submission` for files).

``total-text-iou`` is the IoU 0.5 rule on polygons as DBNet's evaluator runs it
(:func:`sdet.metrics.iou.evaluate_polygon_iou`): every GT image, invalid polygons dropped.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import numpy as np
import shapely

from sdet.metrics.deteval import FragmentRule, MatchState, many_to_one_pass, one_to_many_pass
from sdet.metrics.iou import evaluate_polygon_iou, flatten_set, pair_intersections, raw_polygons
from sdet.metrics.result import GtRegion, ImageResult, MetricResult, credit_result, hmean


def _rounded_ratio(inter: np.ndarray, area: np.ndarray) -> np.ndarray:
    """inter / area rounded to 2 decimals as the script does; 0 for a zero area (the script crashes)."""
    area = np.broadcast_to(area, inter.shape)
    return np.round(np.divide(inter, area, out=np.zeros_like(inter), where=area != 0), 2)


def _one_to_one_total_text(sigma: np.ndarray, tau: np.ndarray, tr: float, tp: float, state: MatchState) -> None:
    """The fixed one-to-one test of the script, all rows at once (flags play no part in it)."""
    s_hit, t_hit = sigma > tr, tau > tp
    rows = np.flatnonzero((s_hit.sum(axis=1) == 1) & (t_hit.sum(axis=1) == 1))
    if rows.size == 0:
        return
    s_col = s_hit[rows].argmax(axis=1)
    t_col = t_hit[rows].argmax(axis=1)
    ok = (s_hit.sum(axis=0)[s_col] == 1) & (t_hit.sum(axis=0)[t_col] == 1)
    state.gt_matched[rows[ok]] = True
    state.det_matched[s_col[ok]] = True
    state.recall_credit += float(ok.sum())
    state.precision_credit += float(ok.sum())


def evaluate_total_text(
    gt: Mapping[str, Sequence[GtRegion]],
    det: Mapping[str, Sequence[np.ndarray]],
    tr: float = 0.7,
    tp: float = 0.6,
    weight: float = 0.8,
    dont_care_threshold: float = 0.5,
    all_gt_images: bool = False,
) -> MetricResult:
    """Score polygons with the Total-Text DetEval rule (see the module docstring).

    ``det`` maps image id -> (x, y) polygons of any vertex count; by default only its images are
    scored, as the official script enumerates the detection folder. A detection for an image
    absent from ``gt`` is a ValueError.
    """
    rule = FragmentRule(recall_threshold=tr, precision_threshold=tp, split_weight=weight, merge_weight=weight,
                        merge_candidate_threshold=tp, sum_decimals=None)
    image_ids, gt_polys, gt_start, gt_dc, det_polys, det_start = flatten_set(
        gt, det, image_ids=None if all_gt_images else list(det))
    # The script's areas are shapely's of the polygons as given (the shoelace area, summed as
    # GEOS sums it: the last bits matter once ratios are rounded to 2 decimals).
    gt_area = shapely.area(raw_polygons(gt_polys)) if gt_polys else np.zeros(0)
    det_area = shapely.area(raw_polygons(det_polys)) if det_polys else np.zeros(0)
    pg, pd, pair_start, inter = pair_intersections(
        gt_polys, gt_start, det_polys, det_start, repair="buffer0", det_first=True)

    per_image: Dict[str, ImageResult] = {}
    recall_credit = precision_credit = 0.0
    for i, image_id in enumerate(image_ids):
        g0, g1, d0, d1 = gt_start[i], gt_start[i + 1], det_start[i], det_start[i + 1]
        table = np.zeros((g1 - g0, d1 - d0))
        sel = slice(pair_start[i], pair_start[i + 1])
        table[pg[sel] - g0, pd[sel] - d0] = inter[sel]
        dc = gt_dc[g0:g1]
        iod = table[dc] / (det_area[d0:d1] + 1.0)
        kept = ~np.any(iod > dont_care_threshold, axis=0)
        table = table[~dc][:, kept]
        sigma = _rounded_ratio(table, gt_area[g0:g1][~dc][:, None])
        tau = _rounded_ratio(table, det_area[d0:d1][kept][None, :])

        n_gt, n_det = table.shape
        state = MatchState.empty(n_gt, n_det)
        care_gt, care_det = np.ones(n_gt, dtype=bool), np.ones(n_det, dtype=bool)
        if n_gt and n_det:
            _one_to_one_total_text(sigma, tau, tr, tp, state)
            one_to_many_pass(sigma, tau, sigma > 0, care_gt, care_det, state, rule)
            many_to_one_pass(sigma, tau, tau > 0, care_gt, care_det, state, rule)
        precision = state.precision_credit / n_det if n_det else 0.0
        recall = state.recall_credit / n_gt if n_gt else 0.0
        per_image[image_id] = ImageResult(
            num_gt=n_gt, num_det=n_det, num_matched=int(state.gt_matched.sum()),
            num_gt_dont_care=int(dc.sum()), num_det_dont_care=int((~kept).sum()),
            precision=precision, recall=recall, hmean=hmean(precision, recall),
        )
        recall_credit += state.recall_credit
        precision_credit += state.precision_credit
    return credit_result(per_image, recall_credit, precision_credit)


# IoU > 0.5 one-to-one on polygons, the number DBNet and most later papers report for Total-Text.
evaluate_total_text_iou = evaluate_polygon_iou
