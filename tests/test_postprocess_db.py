"""DB post-processing on synthetic probability maps with known text regions."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon

from sdet.errors import UserError
from sdet.detectors.db.postprocess import (
    DBPostProcessConfig,
    db_postprocess,
    db_postprocess_batch,
    mini_box,
    unclip,
)
from sdet.ops.geometry import order_quad

FG, BG = 0.9, 0.05


def iou(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = Polygon(a).buffer(0), Polygon(b).buffer(0)
    return pa.intersection(pb).area / pa.union(pb).area


def inverse_shrink(w: float, h: float, ratio: float) -> float:
    """Distance d such that unclip(ratio) of a w x h rect shrunk by d gives back w x h.

    DB's training shrink (1 - 0.4**2) * A / L is not exactly inverted by unclip 1.5 on
    elongated boxes, so the synthetic kernels use the exact inverse instead.
    """
    lo, hi = 0.0, min(w, h) / 2 - 1e-6
    for _ in range(60):
        d = (lo + hi) / 2
        sw, sh = w - 2 * d, h - 2 * d
        grow = sw * sh * ratio / (2 * (sw + sh))
        lo, hi = (d, hi) if grow > d else (lo, d)
    return (lo + hi) / 2


def rect(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    return cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float64)


def draw(prob: np.ndarray, poly: np.ndarray, value: float = FG) -> None:
    cv2.fillPoly(prob, [np.round(poly).astype(np.int32)], value)


def kernel_map(boxes: list[tuple[float, float, float, float, float]], hw=(320, 480), ratio=1.5) -> np.ndarray:
    prob = np.full(hw, BG, dtype=np.float32)
    for cx, cy, w, h, a in boxes:
        d = inverse_shrink(w, h, ratio)
        draw(prob, rect(cx, cy, w - 2 * d, h - 2 * d, a))
    return prob


BOXES = [
    (120.0, 60.0, 160.0, 40.0, 0.0),  # horizontal line of text
    (340.0, 80.0, 60.0, 60.0, 0.0),  # square
    (150.0, 200.0, 180.0, 44.0, 20.0),  # rotated
    (370.0, 230.0, 140.0, 36.0, -35.0),  # rotated the other way
]


def match(dets, boxes) -> list[float]:
    """Best IoU of each ground-truth box against the detections."""
    return [max(iou(d.polygon, rect(*b)) for d in dets) for b in boxes]


def test_quads_recover_unshrunk_boxes():
    prob = kernel_map(BOXES)
    dets = db_postprocess(prob, prob.shape, DBPostProcessConfig())
    assert len(dets) == len(BOXES)
    assert min(match(dets, BOXES)) > 0.9
    for d in dets:
        assert d.polygon.shape == (4, 2) and d.polygon.dtype == np.float32
        assert np.all(d.polygon == np.round(d.polygon))  # integer pixel corners, as PaddleOCR
        assert 0.8 < d.score <= FG + 1e-6  # rotated quads catch some background at their edges
        assert d.entropy is None


def test_quad_corner_order_is_tl_tr_br_bl():
    prob = kernel_map([BOXES[0]])
    (det,) = db_postprocess(prob, prob.shape, DBPostProcessConfig())
    tl, tr, br, bl = det.polygon
    assert tl[0] < tr[0] and bl[0] < br[0]
    assert tl[1] < bl[1] and tr[1] < br[1]


def test_order_quad_matches_paddle_rule():
    shuffled = np.array([[10, 20], [0, 0], [0, 20], [10, 0]], dtype=np.float32)
    np.testing.assert_array_equal(order_quad(shuffled), [[0, 0], [10, 0], [10, 20], [0, 20]])
    # Rotated: sort by x, then the upper of each (left/right) pair comes first.
    pts = np.array([[5, 0], [10, 5], [5, 10], [0, 5]], dtype=np.float32)
    # Sorted by x: (0,5), (5,0), (5,10), (10,5); (5,0) is above (0,5) and (10,5) above (5,10).
    np.testing.assert_array_equal(order_quad(pts), [[5, 0], [10, 5], [5, 10], [0, 5]])
    # Ties in x keep input order (stable sort), which changes the result, as upstream.
    a = np.array([[0, 0], [3, 5], [3, -5], [6, 0]], dtype=np.float32)
    np.testing.assert_array_equal(order_quad(a), [[0, 0], [3, -5], [6, 0], [3, 5]])
    np.testing.assert_array_equal(order_quad(a[[0, 2, 1, 3]]), [[3, -5], [6, 0], [3, 5], [0, 0]])


def test_mini_box_short_side_and_unclip():
    box = np.array([[1, 1], [9, 1], [9, 5], [1, 5]], dtype=np.float32)
    quad, short = mini_box(box)
    assert short == pytest.approx(4.0)
    np.testing.assert_allclose(quad, box)
    grown = unclip(box, 1.5)  # distance = 32 * 1.5 / 24 = 2
    assert grown.ndim == 2 and grown.shape[1] == 2 and len(grown) > 4
    np.testing.assert_array_equal(grown.min(axis=0), [-1, -1])
    np.testing.assert_array_equal(grown.max(axis=0), [11, 7])
    assert unclip(np.array([[0, 0], [5, 0]]), 1.5).shape == (0, 2)
    assert unclip(np.zeros((4, 2)), 1.5).shape == (0, 2)


def test_box_thresh_filters_on_mean_probability():
    prob = np.full((100, 200), BG, dtype=np.float32)
    prob[30:50, 20:150] = 0.5
    kept = db_postprocess(prob, prob.shape, DBPostProcessConfig(box_thresh=0.4))
    assert len(kept) == 1 and kept[0].score == pytest.approx(0.5, abs=1e-6)
    assert db_postprocess(prob, prob.shape, DBPostProcessConfig(box_thresh=0.6)) == []
    # Threshold equal to the score keeps it (upstream compares box_thresh > score).
    assert len(db_postprocess(prob, prob.shape, DBPostProcessConfig(box_thresh=0.5))) == 1


def test_thresh_binarises_strictly():
    prob = np.full((100, 200), BG, dtype=np.float32)
    prob[30:50, 20:150] = 0.5
    assert db_postprocess(prob, prob.shape, DBPostProcessConfig(thresh=0.5, box_thresh=0.1)) == []


def test_min_size_filters_thin_regions():
    prob = np.full((100, 200), BG, dtype=np.float32)
    prob[40:43, 20:150] = FG  # 3 rows of pixels: contour's min-area rect short side is 2
    assert db_postprocess(prob, prob.shape, DBPostProcessConfig()) == []
    (det,) = db_postprocess(prob, prob.shape, DBPostProcessConfig(min_size=2))
    assert det.score == pytest.approx(FG, abs=1e-6)
    # After unclipping the box must still have a short side >= min_size + 2.
    assert db_postprocess(prob, prob.shape, DBPostProcessConfig(min_size=2, unclip_ratio=0.2)) == []


def test_max_candidates_caps_contours():
    prob = np.full((100, 400), BG, dtype=np.float32)
    for i in range(10):
        prob[40:60, 10 + 38 * i : 40 + 38 * i] = FG
    assert len(db_postprocess(prob, prob.shape, DBPostProcessConfig())) == 10
    assert len(db_postprocess(prob, prob.shape, DBPostProcessConfig(max_candidates=4))) == 4


def test_scaling_to_original_size():
    prob = kernel_map(BOXES, hw=(320, 480))
    dest = (720, 1280)
    sy, sx = dest[0] / 320, dest[1] / 480
    small = db_postprocess(prob, (320, 480), DBPostProcessConfig())
    big = db_postprocess(prob, dest, DBPostProcessConfig())
    assert len(big) == len(small) == len(BOXES)
    scale = np.array([sx, sy], dtype=np.float32)
    for s, b in zip(small, big):
        # Same source box, rounded once at each scale: differ by at most half a source pixel.
        assert np.all(np.abs(b.polygon - s.polygon * scale) <= scale / 2 + 1)
        assert b.score == s.score
    scaled_gt = [rect(*bx) * [sx, sy] for bx in BOXES]
    for gt in scaled_gt:
        assert max(iou(d.polygon, gt) for d in big) > 0.9


def test_coordinates_clipped_to_inclusive_dest_bounds():
    prob = np.full((100, 200), BG, dtype=np.float32)
    prob[0:30, 150:200] = FG  # touches the top and right borders: unclip goes outside
    (det,) = db_postprocess(prob, (300, 400), DBPostProcessConfig())
    assert det.polygon[:, 0].max() == 400 and det.polygon[:, 1].min() == 0
    assert det.polygon.min() >= 0 and det.polygon[:, 1].max() <= 300


def arc_band(center, r_in, r_out, a0, a1, n=60) -> np.ndarray:
    t = np.linspace(np.deg2rad(a0), np.deg2rad(a1), n)
    outer = np.stack([center[0] + r_out * np.cos(t), center[1] + r_out * np.sin(t)], 1)
    inner = np.stack([center[0] + r_in * np.cos(t[::-1]), center[1] + r_in * np.sin(t[::-1])], 1)
    return np.concatenate([outer, inner])


def test_poly_mode_follows_curved_band():
    center, r_in, r_out, a0, a1 = (240, 320), 150, 190, 200, 340
    band = arc_band(center, r_in, r_out, a0, a1)
    length = np.deg2rad(a1 - a0) * (r_in + r_out) / 2
    d = inverse_shrink(length, r_out - r_in, 1.5)
    kernel = arc_band(center, r_in + d, r_out - d, a0 + np.rad2deg(d / r_in), a1 - np.rad2deg(d / r_in))
    prob = np.full((320, 480), BG, dtype=np.float32)
    draw(prob, kernel)

    (poly,) = db_postprocess(prob, prob.shape, DBPostProcessConfig(box_type="poly"))
    assert len(poly.polygon) > 4 and poly.polygon.dtype == np.float32
    assert poly.score == pytest.approx(FG, abs=0.02)
    assert Polygon(poly.polygon).buffer(0).contains(Polygon(kernel).buffer(-1))
    assert iou(poly.polygon, band) > 0.85

    # A quad cannot follow the curve: its mean probability is too low to pass box_thresh,
    # and even when let through it covers far more than the band.
    assert db_postprocess(prob, prob.shape, DBPostProcessConfig(box_type="quad")) == []
    (quad,) = db_postprocess(prob, prob.shape, DBPostProcessConfig(box_type="quad", box_thresh=0.1))
    assert iou(quad.polygon, band) < 0.6 < iou(poly.polygon, band)


def test_poly_mode_scores_a_curved_instance_under_the_total_text_protocol():
    """Total-Text's DetEval rule (recall 0.7 / precision 0.6 of areas): only the polygon matches the band."""
    from sdet.metrics.result import GtRegion
    from sdet.metrics.totaltext import evaluate_total_text

    center, r_in, r_out, a0, a1 = (240, 320), 150, 190, 200, 340
    band = arc_band(center, r_in, r_out, a0, a1)
    d = inverse_shrink(np.deg2rad(a1 - a0) * (r_in + r_out) / 2, r_out - r_in, 1.5)
    kernel = arc_band(center, r_in + d, r_out - d, a0 + np.rad2deg(d / r_in), a1 - np.rad2deg(d / r_in))
    prob = np.full((320, 480), BG, dtype=np.float32)
    draw(prob, kernel)
    gt = {"img_1": [GtRegion(polygon=band, dont_care=False)]}
    scores = {}
    for box_type in ("poly", "quad"):
        dets = db_postprocess(prob, prob.shape, DBPostProcessConfig(box_type=box_type, box_thresh=0.1))
        scores[box_type] = evaluate_total_text(gt, {"img_1": [d.polygon for d in dets]})
    assert scores["poly"].recall == scores["poly"].precision == 1.0
    assert scores["quad"].hmean == 0.0


def test_entropy_is_averaged_over_the_scored_region():
    prob = np.full((100, 200), BG, dtype=np.float32)
    prob[30:50, 20:140] = FG
    entropy = np.full(prob.shape, 0.95, dtype=np.float32)  # outside the region: ignored
    entropy[30:50, 20:80] = 0.2
    entropy[30:50, 80:140] = 0.6
    for cfg in (
        DBPostProcessConfig(),
        DBPostProcessConfig(score_mode="slow"),
        DBPostProcessConfig(box_type="poly"),
    ):
        (det,) = db_postprocess(prob, prob.shape, cfg, entropy=entropy)
        assert det.entropy == pytest.approx(0.4, abs=1e-6)
        assert det.score == pytest.approx(FG, abs=1e-6)


def test_entropy_uses_same_pixels_as_score_on_rotated_box():
    prob = kernel_map([BOXES[2]])
    entropy = np.random.default_rng(0).random(prob.shape).astype(np.float32)
    (det,) = db_postprocess(prob, prob.shape, DBPostProcessConfig(), entropy=entropy)
    # With entropy := prob the "entropy" must reproduce the score exactly.
    (same,) = db_postprocess(prob, prob.shape, DBPostProcessConfig(), entropy=prob)
    assert same.entropy == pytest.approx(same.score, abs=1e-9)
    assert 0.0 < det.entropy < 1.0


def test_slow_score_uses_the_contour():
    prob = kernel_map([BOXES[2]])
    (fast,) = db_postprocess(prob, prob.shape, DBPostProcessConfig())
    (slow,) = db_postprocess(prob, prob.shape, DBPostProcessConfig(score_mode="slow"))
    np.testing.assert_array_equal(fast.polygon, slow.polygon)
    # The quad's mask picks up background pixels at the rasterised edges; the contour does not.
    assert slow.score > fast.score
    assert slow.score == pytest.approx(FG, abs=0.01)


def test_dilation_merges_one_pixel_gaps():
    prob = np.full((100, 200), BG, dtype=np.float32)
    prob[30:50, 20:80] = FG
    prob[30:50, 81:140] = FG  # one-pixel gap at column 80
    assert len(db_postprocess(prob, prob.shape, DBPostProcessConfig())) == 2
    assert len(db_postprocess(prob, prob.shape, DBPostProcessConfig(use_dilation=True))) == 1


def test_empty_maps_give_no_detections():
    cfg = DBPostProcessConfig()
    assert db_postprocess(np.zeros((64, 64), np.float32), (128, 128), cfg) == []
    assert db_postprocess(np.full((64, 64), 0.29, np.float32), (128, 128), cfg) == []
    assert db_postprocess(np.zeros((64, 64), np.float32), (128, 128), DBPostProcessConfig(box_type="poly")) == []


def test_batch_scales_each_item_to_its_own_size():
    prob = kernel_map([BOXES[0]])
    probs = np.stack([prob, np.zeros_like(prob), prob])
    ents = np.full_like(probs, 0.25)
    out = db_postprocess_batch(probs, [(320, 480), (100, 100), (640, 960)], DBPostProcessConfig(), ents)
    assert [len(o) for o in out] == [1, 0, 1]
    assert np.all(np.abs(out[2][0].polygon - 2 * out[0][0].polygon) <= 1)
    assert out[0][0].entropy == pytest.approx(0.25)
    same = db_postprocess_batch(probs[:, None], [(320, 480)] * 3, DBPostProcessConfig())
    np.testing.assert_array_equal(same[0][0].polygon, out[0][0].polygon)
    with pytest.raises(ValueError):
        db_postprocess_batch(probs, [(320, 480)], DBPostProcessConfig())


def test_bad_inputs_are_rejected():
    with pytest.raises(UserError):
        DBPostProcessConfig(box_type="rbox")
    with pytest.raises(UserError):
        DBPostProcessConfig(score_mode="mean")
    with pytest.raises(ValueError):
        db_postprocess(np.zeros((1, 8, 8), np.float32), (8, 8), DBPostProcessConfig())
    with pytest.raises(ValueError):
        db_postprocess(np.zeros((8, 8), np.float32), (8, 8), DBPostProcessConfig(), entropy=np.zeros((4, 4)))
