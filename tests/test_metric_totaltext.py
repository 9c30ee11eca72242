"""Total-Text DetEval (tr 0.7, tp 0.6, weight 0.8) and the polygon IoU variant: hand-worked cases.

Polygons are (x, y) vertices; box(x0, y0, x1, y1) is a rectangle of area (x1-x0)*(y1-y0) (plain
polygon areas here, no +1 pixels). sigma = inter / area(GT), tau = inter / area(det), both
rounded to 2 decimals before any comparison.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest

from sdet.cli import main
from sdet.metrics.iou import evaluate_icdar2015
from sdet.metrics.protocols import PROTOCOLS
from sdet.metrics.result import GtRegion
from sdet.metrics.totaltext import evaluate_total_text, evaluate_total_text_iou
from helpers import write_folder


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def arc(x0: float, width: float, n: int = 6) -> np.ndarray:
    """A curved band (2n vertices): an upper arc then the lower arc back, like Total-Text polygons."""
    xs = np.linspace(x0, x0 + width, n)
    ys = 20 * np.sin(np.linspace(0, np.pi, n))
    return np.concatenate([np.stack([xs, 40 - ys], 1), np.stack([xs[::-1], 60 - ys[::-1]], 1)])


def evaluate(gt: List[GtRegion], det: List[np.ndarray], **params):
    return evaluate_total_text({"1": gt}, {"1": det}, **params)


def prh(r) -> tuple:
    return (r.precision, r.recall, r.hmean)


def test_registered() -> None:
    assert PROTOCOLS["total-text"] is evaluate_total_text
    assert PROTOCOLS["total-text-iou"] is evaluate_total_text_iou


def test_one_to_one_exact_curved_polygon() -> None:
    r = evaluate([GtRegion(arc(0, 200))], [arc(0, 200)])
    assert prh(r) == (1.0, 1.0, 1.0)
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 1, 1)


def test_one_to_one_thresholds_are_strict() -> None:
    gt = [GtRegion(box(0, 0, 100, 10))]
    assert evaluate(gt, [box(0, 0, 70, 10)]).num_matched == 0  # sigma 0.70: needs > 0.7
    assert evaluate(gt, [box(0, 0, 71, 10)]).num_matched == 1  # sigma 0.71
    small = [GtRegion(box(0, 0, 60, 10))]
    assert evaluate(small, [box(0, 0, 100, 10)]).num_matched == 0  # tau 0.60: needs > 0.6
    assert evaluate(small, [box(0, 0, 98, 10)]).num_matched == 1   # tau 0.61


def test_ratios_are_rounded_to_two_decimals() -> None:
    gt = [GtRegion(box(0, 0, 100, 10))]
    assert evaluate(gt, [box(0, 0, 70.49, 10)]).num_matched == 0  # sigma 0.7049 -> 0.70
    assert evaluate(gt, [box(0, 0, 70.51, 10)]).num_matched == 1  # 0.7051 -> 0.71


def test_one_gt_split_into_two_detections() -> None:
    # sigma 0.5 each, tau 1: one-to-many with sum sigma 1.0 >= 0.7 -> R 0.8, P 2 x 0.8 over 2.
    r = evaluate([GtRegion(box(0, 0, 100, 20))], [box(0, 0, 50, 20), box(50, 0, 100, 20)])
    assert prh(r) == pytest.approx((0.8, 0.8, 0.8))


def test_split_limits_use_greater_or_equal() -> None:
    # Det A: sigma exactly 0.70, tau 1; det B: a sliver (sigma 0.05, tau 50/350 = 0.14).
    # One-to-one fails (0.70 is not > 0.7); one-to-many: 2 overlaps, pieces with tau >= 0.6 = [A],
    # sigma 0.70 >= 0.7 -> a lone piece, credited 1 and 1.
    r = evaluate([GtRegion(box(0, 0, 100, 10))], [box(0, 0, 70, 10), box(95, 0, 130, 10)])
    assert (r.num_matched, r.num_det) == (1, 2)
    assert prh(r) == pytest.approx((0.5, 1.0, 2 / 3))
    # Pieces summing to 0.69 are not enough.
    r = evaluate([GtRegion(box(0, 0, 100, 10))], [box(0, 0, 35, 10), box(35, 0, 69, 10)])
    assert r.num_matched == 0


def test_two_gts_merged_into_one_detection() -> None:
    # sigma 1 and tau 0.5 for each GT: no one-to-one (no tau > 0.6). Many-to-one: 2 overlaps,
    # sum tau 1.0 >= 0.6 -> R 2 x 0.8 over 2 GTs, P 0.8 over 1 detection.
    r = evaluate([GtRegion(box(0, 0, 50, 20)), GtRegion(box(50, 0, 100, 20))], [box(0, 0, 100, 20)])
    assert prh(r) == pytest.approx((0.8, 0.8, 0.8))
    assert r.num_matched == 2


def test_merge_candidates_need_sigma_tp_not_tr() -> None:
    # GT A (800 px) inside the det; GT B (1200 px) covered 780 px: sigma 0.65 (>= tp, < tr).
    # tau A = 800/1580 = 0.51, tau B = 780/1580 = 0.49: one-to-one fails, the merge takes both.
    gt = [GtRegion(box(0, 0, 40, 20)), GtRegion(box(40, 0, 100, 20))]
    r = evaluate(gt, [box(0, 0, 79, 20)])
    assert r.num_matched == 2
    assert prh(r) == pytest.approx((0.8, 0.8, 0.8))


def test_dont_care_filter_uses_area_plus_one() -> None:
    dc = GtRegion(box(4.96, 0, 20, 10), dont_care=True)
    care = GtRegion(box(100, 0, 200, 10))
    inside = box(6, 0, 16, 10)        # 100/101 > 0.5: dropped
    half = box(0, 0, 10, 10)          # inter 50.4: 50.4/101 = 0.499 kept (50.4/100 would not be)
    match = box(100, 0, 200, 10)
    r = evaluate([dc, care], [inside, half, match])
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 2, 1)
    assert (r.num_gt_dont_care, r.num_det_dont_care) == (1, 1)
    assert prh(r) == pytest.approx((0.5, 1.0, 2 / 3))


def test_only_images_with_detections_are_scored() -> None:
    gt = {"1": [GtRegion(box(0, 0, 10, 10))], "2": [GtRegion(box(0, 0, 10, 10))]}
    det = {"1": [box(0, 0, 10, 10)]}
    r = evaluate_total_text(gt, det)
    assert (r.num_gt, r.recall) == (1, 1.0)  # image 2 has no detection file: not counted
    r = evaluate_total_text(gt, det, all_gt_images=True)
    assert (r.num_gt, r.recall) == (2, 0.5)


def test_empty_gt_and_empty_detections() -> None:
    assert prh(evaluate([], [])) == (0.0, 0.0, 0.0)
    r = evaluate([GtRegion(box(0, 0, 10, 10))], [])  # an empty detection file still counts its GT
    assert (r.num_gt, r.num_det, r.recall) == (1, 0, 0.0)
    r = evaluate([], [box(0, 0, 10, 10)])
    assert (r.num_gt, r.num_det, r.precision) == (0, 1, 0.0)
    assert evaluate_total_text({"1": [GtRegion(box(0, 0, 10, 10))]}, {}).num_gt == 0


def test_unknown_image_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_total_text({"1": []}, {"2": []})


# --- IoU variant (DBNet) and ICDAR2015 on polygons -------------------------------------------

def test_icdar2015_rule_takes_polygons_of_any_vertex_count() -> None:
    r = evaluate_icdar2015({"1": [GtRegion(arc(0, 200)), GtRegion(arc(300, 100, n=9))]},
                           {"1": [arc(0, 200), arc(300, 100, n=9)]})
    assert (r.num_gt, r.num_matched) == (2, 2)


def test_iou_variant_threshold_is_strict() -> None:
    gt = {"1": [GtRegion(box(0, 0, 10, 10))]}
    assert evaluate_total_text_iou(gt, {"1": [box(0, 0, 10, 5)]}).num_matched == 0  # IoU 0.5
    assert evaluate_total_text_iou(gt, {"1": [box(0, 0, 10, 6)]}).num_matched == 1


def test_iou_variant_drops_invalid_polygons() -> None:
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    gt = {"1": [GtRegion(box(0, 0, 10, 10))]}
    r = evaluate_total_text_iou(gt, {"1": [bowtie, box(20, 0, 30, 10)]})
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 1, 0)  # the bow-tie counts nowhere
    assert evaluate_icdar2015(gt, {"1": [bowtie, box(20, 0, 30, 10)]}).num_det == 2
    # A don't-care GT ('#') removes the detections inside it, as in ICDAR2015.
    gt = {"1": [GtRegion(box(0, 0, 10, 10), dont_care=True)]}
    assert evaluate_total_text_iou(gt, {"1": [box(0, 0, 10, 10)]}).num_det == 0


# --- sdet score ---------------------------------------------------------------------------------

def poly_line(polygon: np.ndarray, tail: str = "") -> str:
    return ",".join(f"{v:g}" for v in polygon.ravel()) + tail


def run_cli(capsys, *args: str) -> dict:
    assert main(["score", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_score_total_text(tmp_path: Path, capsys) -> None:
    gt = write_folder(tmp_path / "gt", {
        "gt_img11.txt": [poly_line(arc(0, 200), ",curved"), poly_line(box(0, 100, 100, 120), ",#"),
                         poly_line(box(300, 0, 400, 20), ",split")],
        "gt_img12.txt": [poly_line(box(0, 0, 100, 20), ",missed")],  # no result file: not scored
    })
    pred = write_folder(tmp_path / "pred", {"res_img11.txt": [
        poly_line(arc(0, 200), ",0.9"),          # one-to-one
        poly_line(box(10, 100, 60, 120)),        # inside the '#' region: dropped
        poly_line(box(300, 0, 350, 20)), poly_line(box(350, 0, 400, 20)),  # split
    ]})
    out = run_cli(capsys, "--gt", str(gt), "--pred", str(pred), "--protocol", "total-text")
    assert (out["num_gt"], out["num_det"]) == (2, 3)
    assert out["recall"] == pytest.approx(1.8 / 2)
    assert out["precision"] == pytest.approx(2.6 / 3)
    assert out["hmean"] == pytest.approx(2 * 0.9 * (2.6 / 3) / (0.9 + 2.6 / 3))

    out = run_cli(capsys, "--gt", str(gt), "--pred", str(pred), "--protocol", "total-text-iou")
    # Every GT image counts; the split halves have IoU 0.5 (no match), '#' detection ignored.
    assert (out["num_gt"], out["num_det"], out["num_matched"]) == (3, 3, 1)
    assert out["hmean"] == pytest.approx(2 * (1 / 3) * (1 / 3) / (2 / 3))
