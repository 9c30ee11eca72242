"""MSRA-TD500: the original rule (rotated rectangles, IoU > 0.5 and angle difference < pi/8,
difficult GT = don't care) and the IoU variant; hand-worked cases.

rbox(w, h, angle) is the TD500 annotation ``x y w h angle`` with its top-left at (100, 100): a
w x h box turned by ``angle`` radians about its centre (sdet.data.readers.td500.rotated_box).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest

from sdet.cli import main
from sdet.data.readers.td500 import rotated_box
from sdet.metrics.protocols import PROTOCOLS
from sdet.metrics.result import GtRegion
from sdet.metrics.td500 import angle_difference, evaluate_td500, evaluate_td500_iou, rotated_rects
from helpers import write_folder

EPS = 1e-6  # angles come out of float corner coordinates: test just either side of pi/8


def rbox(w: float, h: float, angle: float = 0.0, x: float = 100, y: float = 100) -> np.ndarray:
    return rotated_box(x, y, w, h, angle)


def evaluate(gt: List[GtRegion], det: List[np.ndarray], **params):
    return evaluate_td500({"1": gt}, {"1": det}, **params)


def prh(r) -> tuple:
    return (r.precision, r.recall, r.hmean)


def test_registered() -> None:
    assert PROTOCOLS["td500"] is evaluate_td500
    assert PROTOCOLS["td500-iou"] is evaluate_td500_iou


def test_rect_angle_is_the_long_side_direction_modulo_pi() -> None:
    _, angles, square = rotated_rects([rbox(100, 20, 0.3), rbox(20, 100, 0.3), rbox(100, 20, 0.3 + np.pi),
                                       rbox(50, 50, 0.2)])
    assert angles[0] == pytest.approx(0.3)
    assert angles[1] == pytest.approx(0.3 + np.pi / 2)  # the long side is the (rotated) height
    assert angles[2] == pytest.approx(0.3)              # turning by pi gives the same line
    assert list(square) == [False, False, False, True]
    # A quad that is not a rectangle gets its minimum-area rectangle's angle.
    quad = np.array([[0, 0], [100, 10], [100, 30], [0, 20]], dtype=np.float64)
    assert rotated_rects([quad])[1][0] == pytest.approx(np.arctan2(10, 100), abs=1e-9)


def test_angle_difference_of_lines() -> None:
    no = np.array(False)
    assert angle_difference(np.array(0.1), np.array(np.pi - 0.1), no) == pytest.approx(0.2)
    assert angle_difference(np.array(0.0), np.array(np.pi / 2), no) == pytest.approx(np.pi / 2)
    assert angle_difference(np.array(0.0), np.array(np.pi / 2), np.array(True)) == pytest.approx(0.0)


def test_one_to_one_exact_rotated() -> None:
    gt = [GtRegion(rbox(200, 40, 0.3))]
    r = evaluate(gt, [rbox(200, 40, 0.3)])
    assert prh(r) == (1.0, 1.0, 1.0)
    # Same rectangle, corners listed from another vertex and anticlockwise: still the same box.
    assert evaluate(gt, [rbox(200, 40, 0.3)[[2, 1, 0, 3]]]).num_matched == 1


def test_iou_exactly_half_is_not_a_match() -> None:
    gt = [GtRegion(rbox(20, 10))]
    assert evaluate(gt, [rbox(20, 5)]).num_matched == 0  # IoU 100/200 = 0.5
    assert evaluate(gt, [rbox(20, 6)]).num_matched == 1  # IoU 0.6


def test_angle_difference_boundary() -> None:
    # A 100 x 60 box turned by pi/8 about its centre still overlaps it with IoU 0.72.
    gt = [GtRegion(rbox(100, 60, 0.0))]
    assert evaluate(gt, [rbox(100, 60, np.pi / 8 - EPS)]).num_matched == 1
    assert evaluate(gt, [rbox(100, 60, np.pi / 8 + EPS)]).num_matched == 0
    assert evaluate(gt, [rbox(100, 60, -np.pi / 8 + EPS)]).num_matched == 1
    # The IoU-only variant ignores the angle: at pi/6 the IoU is still 0.67.
    assert evaluate(gt, [rbox(100, 60, np.pi / 6)]).num_matched == 0
    assert evaluate_td500_iou({"1": gt}, {"1": [rbox(100, 60, np.pi / 6)]}).num_matched == 1


def test_axis_aligned_overlap_variant() -> None:
    # Each rectangle turned about its centre onto the x axis: a long box turned by 0.3 overlaps
    # its unturned self fully (IoU 1), so only the angle test can refuse it.
    gt = [GtRegion(rbox(200, 20, 0.0))]
    assert evaluate(gt, [rbox(200, 20, 0.3)], overlap="axis-aligned").num_matched == 1
    assert evaluate(gt, [rbox(200, 20, 0.3)]).num_matched == 0  # rotated IoU is small
    assert evaluate(gt, [rbox(200, 20, np.pi / 8 + EPS)], overlap="axis-aligned").num_matched == 0
    with pytest.raises(ValueError, match="overlap"):
        evaluate(gt, [], overlap="nope")


def test_squares_compare_angles_modulo_a_quarter_turn() -> None:
    assert evaluate([GtRegion(rbox(50, 50, 0.0))], [rbox(50, 50, np.pi / 2)]).num_matched == 1


def test_difficult_gt_is_dont_care() -> None:
    gt = [GtRegion(rbox(200, 40, 0.0, y=0), dont_care=True), GtRegion(rbox(200, 40, 0.0, y=300))]
    dets = [
        rbox(200, 40, 0.0, y=0),    # matches the difficult GT: not counted anywhere
        rbox(200, 40, 0.0, y=300),  # matches the care GT
        rbox(200, 10, 0.0, y=0),    # inside the difficult GT but IoU 0.25: a false positive
    ]
    r = evaluate(gt, dets)
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 2, 1)
    assert (r.num_gt_dont_care, r.num_det_dont_care) == (1, 1)
    assert prh(r) == pytest.approx((0.5, 1.0, 2 / 3))


def test_care_gt_is_served_before_difficult_gt() -> None:
    # Two identical GTs, the first difficult: the one detection matches the care GT.
    gt = [GtRegion(rbox(200, 40), dont_care=True), GtRegion(rbox(200, 40))]
    r = evaluate(gt, [rbox(200, 40)])
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 1, 1)


def test_one_to_one_greedy_in_gt_order() -> None:
    gt = [GtRegion(rbox(200, 40)), GtRegion(rbox(200, 40))]
    r = evaluate(gt, [rbox(200, 40), rbox(200, 40), rbox(200, 40)])
    assert (r.num_gt, r.num_det, r.num_matched) == (2, 3, 2)
    assert prh(r) == pytest.approx((2 / 3, 1.0, 0.8))


def test_empty_gt_and_empty_detections() -> None:
    assert prh(evaluate_td500({"1": []}, {})) == (0.0, 0.0, 0.0)
    r = evaluate([GtRegion(rbox(200, 40))], [])
    assert (r.num_gt, r.num_det, r.hmean) == (1, 0, 0.0)
    r = evaluate([], [rbox(200, 40)])
    assert (r.num_gt, r.num_det, r.precision) == (0, 1, 0.0)
    flat = np.array([[0, 0], [10, 0], [10, 0], [0, 0]], dtype=np.float64)  # no area: never matches
    assert evaluate([GtRegion(rbox(200, 40))], [flat]).num_matched == 0


def test_unknown_image_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_td500({"1": []}, {"2": []})


def line(polygon: np.ndarray, tail: str = "") -> str:
    return ",".join(f"{v:.4f}" for v in polygon.ravel()) + tail


def test_cli_score_td500(tmp_path: Path, capsys) -> None:
    gt = write_folder(tmp_path / "gt", {
        "gt_IMG_0030.txt": [line(rbox(300, 60, 0.2), ",text"), line(rbox(200, 40, 0.0, y=400), ",###")],
        "gt_IMG_0063.txt": [line(rbox(100, 60, 0.0))],
    })
    pred = write_folder(tmp_path / "pred", {
        "res_IMG_0030.txt": [line(rbox(300, 60, 0.2), ",0.97"), line(rbox(200, 40, 0.0, y=400))],
        "res_IMG_0063.txt": [line(rbox(100, 60, np.pi / 6))],  # IoU 0.67 but turned too far
    })
    for protocol, matched in (("td500", 1), ("td500-iou", 2)):
        assert main(["score", "--gt", str(gt), "--pred", str(pred), "--protocol", protocol]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (out["num_gt"], out["num_det"], out["num_matched"]) == (2, 2, matched), protocol
        assert out["hmean"] == pytest.approx(matched / 2), protocol
