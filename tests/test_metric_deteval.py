"""ICDAR2013 DetEval: hand-worked cases from the rule (see sdet/metrics/deteval.py).

Boxes are ``(left, top, right, bottom)`` in inclusive pixels, so box(0, 0, 99, 19) is 100 x 20
= 2000 px. sigma = inter / area(GT) (area recall), tau = inter / area(det) (area precision).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest

from sdet.cli import main
from sdet.errors import UserError
from sdet.metrics.deteval import evaluate_deteval
from sdet.metrics.protocols import PROTOCOLS
from sdet.metrics.result import GtRegion
from sdet.metrics.submission import parse_region_line, score_folders
from helpers import write_folder

CRLF = "\r\n"  # the official zips' line ends


def box(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)


def evaluate(gt: List[GtRegion], det: List[np.ndarray]):
    return evaluate_deteval({"1": gt}, {"1": det})


def prh(r) -> tuple:
    return (r.precision, r.recall, r.hmean)


def test_registered() -> None:
    assert PROTOCOLS["deteval"] is evaluate_deteval


def test_one_to_one_exact() -> None:
    r = evaluate([GtRegion(box(0, 0, 99, 19))], [box(0, 0, 99, 19)])
    assert prh(r) == (1.0, 1.0, 1.0)
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 1, 1)


def test_one_gt_split_into_two_detections() -> None:
    # Each half: sigma 1000/2000 = 0.5 (no one-to-one), tau 1. One-to-many: 2 overlaps,
    # sum sigma 1.0 >= 0.8 -> recall 0.8, precision 0.8 per piece = 1.6 over 2 detections.
    r = evaluate([GtRegion(box(0, 0, 99, 19))], [box(0, 0, 49, 19), box(50, 0, 99, 19)])
    assert prh(r) == pytest.approx((0.8, 0.8, 0.8))
    assert r.num_matched == 1


def test_two_gts_merged_into_one_detection() -> None:
    # sigma 1 and tau 0.5 for both GTs: the column qualifies twice, so no one-to-one.
    # Many-to-one: 2 overlaps, both candidates (sigma >= 0.8), sum tau 1.0 >= 0.4 ->
    # recall 1.0 per GT (MTYPE_OM_M = 1.0 in the ICDAR2013 script), precision 1.0.
    r = evaluate([GtRegion(box(0, 0, 49, 19)), GtRegion(box(50, 0, 99, 19))], [box(0, 0, 99, 19)])
    assert prh(r) == pytest.approx((1.0, 1.0, 1.0))
    assert r.num_matched == 2
    # The merge weight is a parameter (Wolf & Jolion's fsc_k would be 0.8).
    r = evaluate_deteval({"1": [GtRegion(box(0, 0, 49, 19)), GtRegion(box(50, 0, 99, 19))]},
                         {"1": [box(0, 0, 99, 19)]}, merge_weight=0.8)
    assert prh(r) == pytest.approx((0.8, 0.8, 0.8))


def test_area_recall_exactly_at_limit() -> None:
    gt = [GtRegion(box(0, 0, 99, 9))]  # 1000 px
    assert evaluate(gt, [box(0, 0, 79, 9)]).num_matched == 1  # sigma 800/1000 = 0.8: >= holds
    assert evaluate(gt, [box(0, 0, 78, 9)]).num_matched == 0  # sigma 0.79


def test_area_precision_exactly_at_limit() -> None:
    gt = [GtRegion(box(0, 0, 39, 9))]  # 400 px
    assert evaluate(gt, [box(0, 0, 99, 9)]).num_matched == 1   # tau 400/1000 = 0.4: >= holds
    assert evaluate(gt, [box(0, 0, 100, 9)]).num_matched == 0  # tau 400/1010


def test_pixel_areas_count_both_end_pixels() -> None:
    # box(0, 0, 9, 9) is 10 x 10 = 100 px; box(0, 0, 9, 7) covers 80 of them: sigma exactly 0.8.
    # (Without the +1 convention it would be 9*7/81 = 0.78 and no match.)
    assert evaluate([GtRegion(box(0, 0, 9, 9))], [box(0, 0, 9, 7)]).num_matched == 1


def test_split_sum_is_rounded_to_four_decimals() -> None:
    # GT 25000 x 1 px; pieces of 10000 and 9999 px: sum sigma 19999/25000 = 0.79996 -> 0.8.
    gt = [GtRegion(box(0, 0, 24999, 0))]
    r = evaluate(gt, [box(0, 0, 9999, 0), box(10000, 0, 19998, 0)])
    assert prh(r) == pytest.approx((0.8, 0.8, 0.8))
    r = evaluate(gt, [box(0, 0, 9999, 0), box(10000, 0, 19995, 0)])  # 0.79984 -> 0.7998
    assert r.num_matched == 0


def test_second_overlap_blocks_one_to_one_but_a_lone_piece_still_counts() -> None:
    # Det A equals the GT; det B (90..120) overlaps it a little (sigma 0.1, tau 200/620 = 0.32).
    # One-to-one needs a single overlap on the GT's side -> refused. One-to-many: 2 overlaps,
    # pieces with tau >= 0.4 = [A] alone, sigma 1.0 >= 0.8 -> credited 1 and 1 (a lone piece).
    r = evaluate([GtRegion(box(0, 0, 99, 19))], [box(0, 0, 99, 19), box(90, 0, 120, 19)])
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 2, 1)
    assert prh(r) == pytest.approx((0.5, 1.0, 2 / 3))


def test_dont_care() -> None:
    gt = [GtRegion(box(0, 0, 99, 19), dont_care=True), GtRegion(box(0, 100, 99, 119))]
    dets = [
        box(10, 0, 59, 19),    # tau 1 inside the don't-care GT: counts nowhere
        box(80, 0, 129, 19),   # tau 400/1000 = 0.4, not > 0.4: a care false positive
        box(0, 100, 99, 119),  # matches the care GT
    ]
    r = evaluate(gt, dets)
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 2, 1)
    assert (r.num_gt_dont_care, r.num_det_dont_care) == (1, 1)
    assert prh(r) == pytest.approx((0.5, 1.0, 2 / 3))


def test_detection_matching_only_a_dont_care_gt_counts_nowhere() -> None:
    r = evaluate([GtRegion(box(0, 0, 99, 19), dont_care=True)], [box(0, 0, 99, 19)])
    assert (r.num_gt, r.num_det) == (0, 0)
    assert prh(r) == (0.0, 0.0, 0.0)


def test_empty_gt_and_empty_detections() -> None:
    assert prh(evaluate_deteval({"1": []}, {})) == (0.0, 0.0, 0.0)
    r = evaluate([GtRegion(box(0, 0, 9, 9))], [])
    assert (r.num_gt, r.num_det, r.hmean) == (1, 0, 0.0)
    r = evaluate([], [box(0, 0, 9, 9)])
    assert (r.num_gt, r.num_det, r.precision) == (0, 1, 0.0)
    assert r.per_image["1"].recall == 1.0  # the official per-sample convention


def test_totals_are_accumulated_over_the_set() -> None:
    # Image 1: perfect; image 2: a split (recall 0.8, precision 1.6) -> R 1.8/2, P 2.6/3.
    gt = {"1": [GtRegion(box(0, 0, 99, 19))], "2": [GtRegion(box(0, 0, 99, 19))]}
    det = {"1": [box(0, 0, 99, 19)], "2": [box(0, 0, 49, 19), box(50, 0, 99, 19)]}
    r = evaluate_deteval(gt, det)
    assert (r.recall, r.precision) == pytest.approx((0.9, 2.6 / 3))


def test_polygons_are_scored_as_their_bounding_rectangles() -> None:
    quad = np.array([[0, 0], [99, 2], [97, 19], [1, 17]], dtype=np.float64)  # bbox (0, 0, 99, 19)
    assert evaluate([GtRegion(box(0, 0, 99, 19))], [quad]).num_matched == 1


def test_unknown_image_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_deteval({"1": []}, {"2": [box(0, 0, 1, 1)]})


# --- submission files -----------------------------------------------------------------------

@pytest.mark.parametrize("line,polygon,rest", [
    ('38, 43, 920, 215, "Tiredness"', box(38, 43, 920, 215), "Tiredness"),
    ('158 128 411 181 "Footpath"', box(158, 128, 411, 181), "Footpath"),
    ("38,43,920,215", box(38, 43, 920, 215), None),
    ("38,43,920,215,0.93", box(38, 43, 920, 215), "0.93"),
    ('0,0,10,0,10,10,0,10,"###"', box(0, 0, 10, 10), "###"),
])
def test_parse_icdar2013_and_polygon_lines(line: str, polygon: np.ndarray, rest) -> None:
    got, text = parse_region_line(line, ltrb=True)
    np.testing.assert_array_equal(got, polygon)
    assert text == rest


@pytest.mark.parametrize("bad", ["", "1,2,3", "10,10,5,20", "a,b,c,d"])
def test_parse_rejects_malformed_icdar2013(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_region_line(bad, ltrb=True)


def run_cli(capsys, *args: str) -> dict:
    assert main(["score", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_score_deteval(tmp_path: Path, capsys) -> None:
    gt = write_folder(tmp_path / "gt", newline=CRLF, files={
        "gt_img_1.txt": ['0, 0, 99, 19, "Tired, ness"', '0, 100, 49, 119, "a"', '50, 100, 99, 119, "b"',
                         '200 200 299 219 "###"'],
        "gt_img_2.txt": ["0,0,99,0,99,19,0,19,split"],
    })
    pred = write_folder(tmp_path / "pred", newline=CRLF, files={
        "res_img_1.txt": ["0,0,99,19", "0,100,99,119,0.9", "210,200,260,219"],  # exact, merge, don't care
        "res_img_2.txt": ["0,0,49,0,49,19,0,19", "50,0,99,0,99,19,50,19"],      # split
    })
    out = run_cli(capsys, "--gt", str(gt), "--pred", str(pred), "--protocol", "deteval")
    # Recall credit 1 + 2 + 0.8 over 4 GTs; precision credit 1 + 1 + 1.6 over 4 detections.
    assert (out["num_gt"], out["num_det"]) == (4, 4)
    assert out["recall"] == pytest.approx(3.8 / 4)
    assert out["precision"] == pytest.approx(3.6 / 4)
    assert out["hmean"] == pytest.approx(2 * 0.95 * 0.9 / 1.85)


def test_cli_score_reports_bad_lines(tmp_path: Path, capsys) -> None:
    gt = write_folder(tmp_path / "gt", newline=CRLF, files={"gt_img_1.txt": ['0,0,9,9,"a"']})
    pred = write_folder(tmp_path / "pred", newline=CRLF, files={"res_img_1.txt": ["0,0,9,9", "9,0,0,9"]})
    assert main(["score", "--gt", str(gt), "--pred", str(pred), "--protocol", "deteval"]) == 2
    assert "res_img_1.txt:2" in capsys.readouterr().err
    with pytest.raises(UserError, match="no ground truth for image img_7"):
        score_folders(gt, write_folder(tmp_path / "p2", {"res_img_7.txt": []}, CRLF), "deteval")


def test_evaluator_dispatches_through_the_registry() -> None:
    from sdet.data.sample import Sample, TextInstance
    from sdet.engine.evaluator import score_detections
    from sdet.detectors.detection import Detection

    samples = [Sample("a.jpg", [TextInstance(box(0, 0, 49, 19)), TextInstance(box(50, 0, 99, 19))])]
    dets = [[Detection(box(0, 0, 99, 19).astype(np.float32), 0.9)]]
    assert score_detections(samples, dets, "deteval").recall == 1.0      # a merge, credit 1.0
    assert score_detections(samples, dets, "total-text").recall == 0.8   # a merge, credit 0.8
    assert score_detections(samples, dets).recall == 0.0                 # icdar2015: IoU 0.5 each
    with pytest.raises(UserError, match="unknown protocol"):
        score_detections(samples, dets, "nope")
