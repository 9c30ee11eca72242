"""The ICDAR2015 protocol: official reference numbers plus hand-worked edge cases."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import List

import numpy as np
import pytest

from sdet.errors import UserError
from sdet.metrics.iou import GtRegion, evaluate_icdar2015
from sdet.metrics.submission import parse_icdar2015_line, read_gt_file, read_result_file, score_folders
from helpers import SHARED, write_folder

CASES = SHARED / "eval-cases" / "icdar2015"
GT_DIR = SHARED / "data" / "icdar2015" / "Challenge4_Test_Task1_GT"


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned quad, clockwise in image coordinates (y down)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def line(quad: np.ndarray, tail: str = "") -> str:
    return ",".join(str(int(v)) for v in quad.ravel()) + tail


def prh(result) -> tuple:
    return (result.precision, result.recall, result.hmean)


# --- official reference cases -------------------------------------------------------------

def _reference_cases() -> list:
    if not (CASES / "expected.json").is_file():
        return []
    return sorted(json.loads((CASES / "expected.json").read_text())["cases"].items())


@pytest.mark.parametrize("name,expected", _reference_cases() or [pytest.param("none", {}, marks=pytest.mark.skip(
    reason=f"shared eval cases not found at {CASES}"))])
def test_reference_case_matches_official_script(name: str, expected: dict) -> None:
    if not GT_DIR.is_dir():
        pytest.skip(f"ICDAR2015 test GT not found at {GT_DIR}")
    result = score_folders(GT_DIR, CASES / name)
    for key in ("precision", "recall", "hmean"):
        assert result.to_dict()[key] == pytest.approx(expected[key], abs=1e-4), key


# --- pure protocol cases ------------------------------------------------------------------

def evaluate(gt: List[GtRegion], det: List[np.ndarray]):
    return evaluate_icdar2015({"1": gt}, {"1": det})


def test_exact_match() -> None:
    r = evaluate([GtRegion(box(0, 0, 10, 10))], [box(0, 0, 10, 10)])
    assert prh(r) == (1.0, 1.0, 1.0)
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 1, 1)


@pytest.mark.parametrize("gt,det", [
    (box(0, 0, 10, 10), box(0, 0, 10, 5)),   # 50 / 100
    (box(0, 0, 12, 10), box(4, 0, 16, 10)),  # 80 / 160
])
def test_iou_exactly_half_is_not_a_match(gt: np.ndarray, det: np.ndarray) -> None:
    r = evaluate([GtRegion(gt)], [det])
    assert (r.num_matched, r.precision, r.recall, r.hmean) == (0, 0.0, 0.0, 0.0)


def test_iou_just_above_half_matches() -> None:
    r = evaluate([GtRegion(box(0, 0, 10, 10))], [box(0, 0, 10, 6)])  # IoU 0.6
    assert r.num_matched == 1


def test_dont_care_filtering() -> None:
    gt = [GtRegion(box(0, 0, 10, 10)), GtRegion(box(100, 100, 120, 110), dont_care=True)]
    dets = [
        box(0, 0, 10, 10),       # match
        box(100, 100, 110, 110),  # inside the don't-care region: ignored
        box(115, 100, 125, 110),  # exactly half on it (50/100): not > 0.5, a false positive
    ]
    r = evaluate(gt, dets)
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 2, 1)
    assert (r.num_gt_dont_care, r.num_det_dont_care) == (1, 1)
    assert prh(r) == pytest.approx((0.5, 1.0, 2 / 3))


def test_detection_matching_only_a_dont_care_gt_is_not_counted() -> None:
    r = evaluate([GtRegion(box(0, 0, 10, 10), dont_care=True)], [box(0, 0, 10, 10)])
    assert (r.num_gt, r.num_det, r.num_matched) == (0, 0, 0)
    assert prh(r) == (0.0, 0.0, 0.0)  # nothing to count anywhere: official 0 conventions


def test_duplicate_detections_match_once() -> None:
    r = evaluate([GtRegion(box(0, 0, 10, 10))], [box(0, 0, 10, 10), box(0, 0, 10, 10), box(1, 0, 10, 10)])
    assert (r.num_det, r.num_matched) == (3, 1)
    assert prh(r) == pytest.approx((1 / 3, 1.0, 0.5))


def test_greedy_matching_follows_gt_then_detection_order() -> None:
    gt = [GtRegion(box(0, 0, 10, 10)), GtRegion(box(0, 0, 10, 6))]
    d1 = box(0, 0, 10, 7)   # IoU 0.7 with GT0, 0.857 with GT1
    d2 = box(0, 0, 12, 10)  # IoU 0.833 with GT0, exactly 0.5 with GT1
    assert evaluate(gt, [d1, d2]).num_matched == 1  # GT0 takes d1 first; GT1 is left without
    assert evaluate(gt, [d2, d1]).num_matched == 2


def test_self_intersecting_quad_counts_both_lobes() -> None:
    # Bow-tie with two 25-px lobes: Polygon-library area |25 - 25| = 0, intersection 50.
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    r = evaluate([GtRegion(box(0, 0, 10, 10))], [bowtie])
    assert r.num_matched == 1  # IoU = 50 / (0 + 100 - 50) = 1
    # With zero area it can never be don't-care (precision 0): it stays a false positive.
    r = evaluate([GtRegion(box(0, 0, 10, 10), dont_care=True)], [bowtie])
    assert (r.num_det, r.num_det_dont_care, r.precision) == (1, 0, 0.0)


def test_degenerate_quads_never_match() -> None:
    flat = np.array([[0, 0], [10, 0], [10, 0], [0, 0]], dtype=np.float64)
    r = evaluate([GtRegion(box(0, 0, 10, 10))], [flat])
    assert (r.num_gt, r.num_det, r.num_matched) == (1, 1, 0)
    r = evaluate([GtRegion(flat)], [flat])  # union 0: IoU taken as 0
    assert (r.num_gt, r.num_det, r.num_matched, r.hmean) == (1, 1, 0, 0.0)


def test_totals_are_over_the_set_and_empty_images_add_nothing() -> None:
    gt = {"1": [GtRegion(box(0, 0, 10, 10))], "2": [GtRegion(box(0, 0, 10, 10))], "3": [], "4": []}
    det = {"1": [box(0, 0, 10, 10)], "4": [box(0, 0, 5, 5)]}
    r = evaluate_icdar2015(gt, det)
    assert (r.num_gt, r.num_det, r.num_matched) == (2, 2, 1)
    assert prh(r) == pytest.approx((0.5, 0.5, 0.5))
    # Per-image values follow the official per-sample conventions.
    assert (r.per_image["3"].precision, r.per_image["3"].recall) == (1.0, 1.0)
    assert (r.per_image["4"].precision, r.per_image["4"].recall) == (0.0, 1.0)
    assert r.per_image["2"].precision == 0.0


def test_no_detections_at_all() -> None:
    r = evaluate_icdar2015({"1": [GtRegion(box(0, 0, 10, 10))]}, {})
    assert (r.num_gt, r.num_det) == (1, 0)
    assert prh(r) == (0.0, 0.0, 0.0)


def test_detections_for_unknown_image_are_refused() -> None:
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_icdar2015({"1": []}, {"2": [box(0, 0, 1, 1)]})


def test_to_dict_keys() -> None:
    d = evaluate([GtRegion(box(0, 0, 10, 10))], [box(0, 0, 10, 10)]).to_dict()
    assert {"precision", "recall", "hmean", "num_gt", "num_det", "num_matched"} <= set(d)
    assert "per_image" not in d
    json.dumps(d)


# --- file formats -------------------------------------------------------------------------

def test_parse_line_with_commas_and_quotes_in_transcription() -> None:
    quad, text = parse_icdar2015_line("377,117,463,117,465,130,378,130,Genaxis,Theatre,")
    np.testing.assert_array_equal(quad, [[377, 117], [463, 117], [465, 130], [378, 130]])
    assert text == "Genaxis,Theatre,"
    assert parse_icdar2015_line('0,0,1,0,1,1,0,1,"say \\"1,000\\""')[1] == 'say "1,000"'
    assert parse_icdar2015_line(" 0 , 0,1,0,1,1,0,1")[1] is None
    assert parse_icdar2015_line("0.5,0,1,0,1,1,0,1,0.9")[0][0, 0] == 0.5


@pytest.mark.parametrize("bad", ["", "1,2,3,4,5,6,7", "1,2,3,4,5,6,7,x", "1,2,3,4,5,6,7,1e3", "a,b,c,d,e,f,g,h,###"])
def test_parse_line_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_icdar2015_line(bad)


def test_gt_with_bom_and_crlf() -> None:
    raw = b"\xef\xbb\xbf0,0,10,0,10,10,0,10,hello, world\r\n\r\n20,0,30,0,30,10,20,10,###\r\n"
    regions = read_gt_file(raw, "gt_img_1.txt")
    assert [r.dont_care for r in regions] == [False, True]  # '###' is exact once CR is gone
    np.testing.assert_array_equal(regions[0].polygon[0], [0, 0])  # BOM did not break x1


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    gt = write_folder(tmp_path / "gt", {"gt_img_1.txt": [line(box(0, 0, 10, 10), ",a"), "1,2,3,4,5,6,7,a"]})
    res = write_folder(tmp_path / "res", {})
    with pytest.raises(UserError) as info:
        score_folders(gt, res)
    assert info.value.line == 2 and info.value.path.endswith("gt_img_1.txt")
    assert "gt_img_1.txt:2" in str(info.value)

    res = write_folder(tmp_path / "res2", {"res_img_1.txt": [line(box(0, 0, 10, 10)), "", "0,0,10,0,10,10,0"]})
    gt = write_folder(tmp_path / "gt2", {"gt_img_1.txt": [line(box(0, 0, 10, 10), ",a")]})
    with pytest.raises(UserError) as info:
        score_folders(gt, res)
    assert info.value.line == 3 and info.value.path.endswith("res_img_1.txt")


def test_counter_clockwise_result_quad_is_refused() -> None:
    ccw = box(0, 0, 10, 10)[::-1]
    with pytest.raises(UserError, match="counter-clockwise") as info:
        read_result_file(line(ccw).encode(), "res_img_1.txt")
    assert info.value.line == 1


def test_missing_and_empty_result_files(tmp_path: Path) -> None:
    gt = write_folder(tmp_path / "gt", {
        "gt_img_1.txt": [line(box(0, 0, 10, 10), ",a")],
        "gt_img_2.txt": [line(box(0, 0, 10, 10), ",b")],
        "gt_img_3.txt": [line(box(0, 0, 10, 10), ",c")],
        "gt_img_4.txt": [],
        "readme.md": ["ignored"],
    }, newline="\r\n")
    res = write_folder(tmp_path / "res", {"res_img_1.txt": [line(box(0, 0, 10, 10))], "res_img_3.txt": []})
    r = score_folders(gt, res)
    assert (r.num_gt, r.num_det, r.num_matched) == (3, 1, 1)
    assert prh(r) == pytest.approx((1.0, 1 / 3, 0.5))

    empty = write_folder(tmp_path / "empty", {})
    assert prh(score_folders(gt, empty)) == (0.0, 0.0, 0.0)


def test_result_for_unknown_image_is_an_error(tmp_path: Path) -> None:
    gt = write_folder(tmp_path / "gt", {"gt_img_1.txt": [line(box(0, 0, 10, 10), ",a")]})
    res = write_folder(tmp_path / "res", {"res_img_7.txt": [line(box(0, 0, 10, 10))]})
    with pytest.raises(UserError, match="no ground truth for image 7") as info:
        score_folders(gt, res)
    assert info.value.path.endswith("res_img_7.txt")
    misnamed = write_folder(tmp_path / "misnamed", {"img_1.txt": [line(box(0, 0, 10, 10))]})
    with pytest.raises(UserError, match="res_img_N"):
        score_folders(gt, misnamed)


def test_confidences_reorder_detections_like_the_official_script(tmp_path: Path) -> None:
    gt_lines = [line(box(0, 0, 10, 10), ",a"), line(box(0, 0, 10, 6), ",b")]
    gt = write_folder(tmp_path / "gt", {"gt_img_1.txt": gt_lines})
    d1, d2 = line(box(0, 0, 10, 7)), line(box(0, 0, 12, 10))  # see the greedy-order test
    plain = write_folder(tmp_path / "plain", {"res_img_1.txt": [d1, d2]})
    scored = write_folder(tmp_path / "scored", {"res_img_1.txt": [d1 + ",0.9", d2 + ",0.95"]})
    assert score_folders(gt, plain).num_matched == 1
    assert score_folders(gt, scored).num_matched == 2  # d2 (higher score) is matched first


def test_zip_inputs(tmp_path: Path) -> None:
    gt_zip, res_zip = tmp_path / "gt.zip", tmp_path / "res.zip"
    with zipfile.ZipFile(gt_zip, "w") as z:
        z.writestr("gt_img_1.txt", line(box(0, 0, 10, 10), ",a") + "\n" + line(box(20, 0, 30, 10), ",###"))
    with zipfile.ZipFile(res_zip, "w") as z:
        z.writestr("res_img_1.txt", line(box(0, 0, 10, 10)) + "\n" + line(box(0, 20, 10, 30)))
    r = score_folders(gt_zip, res_zip)
    assert (r.num_gt, r.num_det, r.num_matched, r.num_gt_dont_care) == (1, 2, 1, 1)


def test_unknown_protocol_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown protocol"):
        score_folders(tmp_path, tmp_path, protocol="nope")
    with pytest.raises(UserError, match="not a folder"):
        score_folders(tmp_path / "absent", tmp_path)
