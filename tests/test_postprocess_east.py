"""EAST post-processing: geometry restore, LA-NMS against a literal reference, the full pipeline."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from reference_lanms import ref_iou, ref_lanms

from sdet.errors import UserError
from sdet.detectors.east.postprocess import (
    EASTPostProcessConfig,
    decode_candidates,
    east_postprocess,
    iou_exceeds,
    locality_aware_nms,
    merge_consecutive,
    quad_iou,
    restore_quad,
    restore_rbox,
    standard_nms,
)

STRIDE = 4


# ----------------------------------------------------------------------------- synthetic data


def rect_quad(x0: float, y0: float, x1: float, y1: float, score: float) -> np.ndarray:
    return np.array([x0, y0, x1, y0, x1, y1, x0, y1, score], dtype=np.float64)


def line_geometry(origins: np.ndarray, center, size, angle: float) -> np.ndarray:
    """RBOX geometry (5, N) of a rotated rectangle seen from each origin (reference convention)."""
    (cx, cy), (w, h) = center, size
    dx, dy = origins[:, 0] - cx, origins[:, 1] - cy
    cos, sin = np.cos(angle), np.sin(angle)
    lx, ly = cos * dx - sin * dy, sin * dx + cos * dy
    return np.stack([ly + h / 2, w / 2 - lx, h / 2 - ly, lx + w / 2, np.full_like(lx, angle)])


def east_maps(lines, hw=(48, 80), noise=0.0, seed=0, value=0.95):
    """Score (H, W) and RBOX geo (5, H, W) maps at stride 4 for (center, (w, h), angle) lines.

    Every pixel inside a line's shrunk kernel predicts that line's rectangle, with
    optional Gaussian noise, as a trained EAST head would.
    """
    rng = np.random.default_rng(seed)
    h, w = hw
    score = np.full((h, w), 0.02, np.float32)
    geo = np.zeros((5, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    origins = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64) * STRIDE
    for center, (lw, lh), angle in lines:
        shrink = 0.3 * lh
        kernel = ((center[0] / STRIDE, center[1] / STRIDE), ((lw - 2 * shrink) / STRIDE, (lh - 2 * shrink) / STRIDE),
                  -np.degrees(angle))
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(cv2.boxPoints(kernel)).astype(np.int32)], 1)
        idx = np.flatnonzero(mask.ravel())
        g = line_geometry(origins[idx], center, (lw, lh), angle)
        if noise:
            g[:4] += rng.normal(0, noise, g[:4].shape)
            g[4] += rng.normal(0, noise / 100, g.shape[1])
        geo.reshape(5, -1)[:, idx] = g
        score.ravel()[idx] = value
    return score, geo


def true_quad(center, size, angle) -> np.ndarray:
    return restore_rbox(np.array([center]), line_geometry(np.array([center], float), center, size, angle).T)[0]


def clustered_candidates(seed: int, lines: int = 4, noise: float = 2.0, hw=(40, 64)) -> np.ndarray:
    """Raster-ordered candidates from random (possibly crossing) rotated text lines."""
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(lines):
        lh = rng.uniform(12, 36)
        lw = lh * rng.uniform(2, 7)
        center = (rng.uniform(20, hw[1] * STRIDE - 20), rng.uniform(20, hw[0] * STRIDE - 20))
        specs.append((center, (lw, lh), float(rng.uniform(-0.6, 0.6))))
    score, geo = east_maps(specs, hw=hw, noise=noise, seed=seed)
    score[score > 0.5] = rng.uniform(0.81, 1.0, int((score > 0.5).sum()))
    return decode_candidates(score, geo, 0.8, STRIDE)


# ----------------------------------------------------------------------------- geometry restore


def test_restore_rbox_axis_aligned():
    corners = restore_rbox(np.array([[100.0, 50.0]]), np.array([[10.0, 30.0, 5.0, 20.0, 0.0]]))
    np.testing.assert_allclose(corners[0], [[80, 40], [130, 40], [130, 55], [80, 55]])


@pytest.mark.parametrize("angle", [-0.7, -0.2, 0.0, 0.3, 0.7])
def test_restore_rbox_reproduces_distances_and_angle(angle):
    origin = np.array([[64.0, 48.0]])
    geo = np.array([[7.0, 21.0, 3.0, 40.0, angle]])
    (tl, tr, br, bl) = restore_rbox(origin, geo)[0]

    def dist(p, a, b):
        (ax, ay), (bx, by), (px, py) = a, b, p
        return abs((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / np.hypot(bx - ax, by - ay)

    o = origin[0]
    np.testing.assert_allclose([dist(o, tl, tr), dist(o, tr, br), dist(o, br, bl), dist(o, bl, tl)], geo[0, :4])
    # Positive angles tilt the top edge up to the right on screen (y points down).
    assert np.arctan2(-(tr[1] - tl[1]), tr[0] - tl[0]) == pytest.approx(angle)
    assert np.hypot(*(tr - tl)) == pytest.approx(61.0) and np.hypot(*(bl - tl)) == pytest.approx(10.0)


def test_restore_quad_adds_offsets():
    out = restore_quad(np.array([[8.0, 4.0]]), np.arange(8, dtype=float)[None])
    np.testing.assert_allclose(out[0], [[8, 5], [10, 7], [12, 9], [14, 11]])


def test_decode_candidates_keeps_raster_order_and_threshold():
    score = np.zeros((3, 4), np.float32)
    score[0, 3], score[1, 0], score[1, 2], score[2, 1] = 0.9, 0.85, 0.7, 0.95
    geo = np.zeros((5, 3, 4), np.float32)
    geo[:4] = 2.0
    cands = decode_candidates(score, geo, 0.8, STRIDE)
    np.testing.assert_allclose(cands[:, 8], [0.9, 0.85, 0.95], rtol=1e-6)
    # Pixel (row, col) restores around (col * 4, row * 4) in input pixels.
    np.testing.assert_allclose(cands[:, :2], [[10, -2], [-2, 2], [2, 6]])
    with pytest.raises(ValueError):
        decode_candidates(score, np.zeros((6, 3, 4)), 0.8)


# ----------------------------------------------------------------------------- IoU


def test_quad_iou_matches_shapely_on_random_quads():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 20, (400, 8))  # many are non-convex or self-intersecting
    b = rng.uniform(0, 20, (400, 8))
    b[:50] = a[:50]  # identical pairs, where edges coincide
    boxes = np.array([rect_quad(0, 0, 10, 5, 1)[:8], rect_quad(5, 0, 15, 5, 1)[:8]])
    a, b = np.concatenate([a, boxes[:1]]), np.concatenate([b, boxes[1:]])
    expected = np.array([ref_iou(p, q) for p, q in zip(a, b)])
    np.testing.assert_allclose(quad_iou(a, b), expected, atol=1e-9)
    assert expected[-1] == pytest.approx(1 / 3)
    for thresh in (0.0, 0.2, 0.5):
        np.testing.assert_array_equal(iou_exceeds(a, b, thresh), expected > thresh)


def test_bowtie_counts_as_zero_iou():
    square = rect_quad(0, 0, 10, 10, 1)[:8]
    bowtie = np.array([0, 0, 10, 10, 10, 0, 0, 10], dtype=float)
    assert quad_iou(square[None], bowtie[None])[0] == 0.0


def test_iou_exceeds_on_near_identical_clusters():
    quads = clustered_candidates(seed=3, noise=1.0)[:, :8]
    a, b = quads[1:], quads[:-1]
    expected = np.array([ref_iou(p, q) for p, q in zip(a, b)])
    for thresh in (0.2, 0.6, 0.9):
        np.testing.assert_array_equal(iou_exceeds(a, b, thresh), expected > thresh)


# ----------------------------------------------------------------------------- LA-NMS


def test_overlapping_quads_merge_with_score_weights():
    quads = np.stack([
        rect_quad(0, 0, 10, 5, 0.9),
        rect_quad(1, 0, 11, 5, 0.6),  # IoU 45/55 with the first: merged
        rect_quad(0, 0, 10, 5, 0.5),  # IoU 9.6/10.4 with the running mean [0.4, 10.4]: merged
    ])
    (merged,) = merge_consecutive(quads, 0.2)
    # x: (0.9 * 0 + 0.6 * 1 + 0.5 * 0) / 2.0 = 0.3 on the left, 10.3 on the right.
    np.testing.assert_allclose(merged, [0.3, 0, 10.3, 0, 10.3, 5, 0.3, 5, 2.0])
    np.testing.assert_allclose(locality_aware_nms(quads, 0.2), merged[None])


def test_identical_quads_become_one_with_summed_score():
    quad = rect_quad(3, 4, 30, 12, 0.8)
    out = locality_aware_nms(np.stack([quad, quad, quad]), 0.2)
    np.testing.assert_allclose(out, [[3, 4, 30, 4, 30, 12, 3, 12, 2.4]])


def test_disjoint_quads_are_all_kept():
    quads = np.stack([rect_quad(0, 0, 10, 5, 0.9), rect_quad(20, 0, 30, 5, 0.95), rect_quad(0, 20, 10, 25, 0.85)])
    out = locality_aware_nms(quads, 0.2)
    # Standard NMS returns them by descending score.
    np.testing.assert_allclose(out, quads[[1, 0, 2]])


def test_standard_nms_suppresses_above_threshold_only():
    high = rect_quad(0, 0, 10, 10, 0.9)
    over = rect_quad(5, 0, 15, 10, 0.8)  # IoU 50 / 150 = 1/3
    np.testing.assert_allclose(standard_nms(np.stack([over, high]), 0.2), high[None])
    np.testing.assert_allclose(standard_nms(np.stack([over, high]), 0.4), np.stack([high, over]))
    # Not consecutive (a disjoint quad in between), so only the standard NMS can catch it.
    far = rect_quad(50, 50, 60, 60, 0.85)
    np.testing.assert_allclose(locality_aware_nms(np.stack([over, far, high]), 0.2), np.stack([high, far]))
    np.testing.assert_allclose(locality_aware_nms(np.stack([over, far, high]), 0.4), np.stack([high, far, over]))


def test_greedy_nms_lets_a_suppressed_quad_spare_others():
    a = rect_quad(0, 0, 10, 10, 0.9)
    b = rect_quad(6, 0, 16, 10, 0.8)  # IoU(a, b) = 0.25: suppressed by a
    c = rect_quad(12, 0, 22, 10, 0.7)  # IoU(b, c) = 0.25 but b is gone; IoU(a, c) = 0
    np.testing.assert_allclose(standard_nms(np.stack([c, b, a]), 0.2), np.stack([a, c]))


def test_standard_nms_reaches_overlaps_after_many_isolated_quads():
    # More isolated quads than one batch of heads, then an overlapping pair far down the ranking.
    isolated = [rect_quad(20 * i, 0, 20 * i + 10, 10, 0.99 - 0.001 * i) for i in range(40)]
    pair = [rect_quad(0, 50, 10, 60, 0.5), rect_quad(1, 50, 11, 60, 0.4)]
    out = standard_nms(np.stack(isolated + pair), 0.2)
    np.testing.assert_allclose(out, np.stack(isolated + pair[:1]))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thresh", [0.2, 0.5])
def test_matches_literal_reference_on_clustered_candidates(seed, thresh):
    quads = clustered_candidates(seed, lines=5, noise=[0.5, 2.0, 6.0][seed % 3])
    assert len(quads) > 50
    expected = ref_lanms(quads, thresh)
    out = locality_aware_nms(quads, thresh)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_matches_literal_reference_on_random_quads(seed):
    # Random small jitters of a few shapes, convex or not, some self-intersecting.
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 30, (5, 8))
    rows = base[rng.integers(0, 5, 120)] + rng.normal(0, 2.0, (120, 8))
    quads = np.concatenate([rows, rng.uniform(0.1, 1.0, (120, 1))], axis=1)
    np.testing.assert_allclose(locality_aware_nms(quads, 0.3), ref_lanms(quads, 0.3), rtol=1e-9, atol=1e-7)


def test_empty_and_single_inputs():
    assert locality_aware_nms(np.zeros((0, 9)), 0.2).shape == (0, 9)
    one = rect_quad(0, 0, 4, 4, 0.9)[None]
    np.testing.assert_allclose(locality_aware_nms(one, 0.2), one)
    with pytest.raises(ValueError):
        locality_aware_nms(np.zeros((3, 8)), 0.2)


# ----------------------------------------------------------------------------- full pipeline

LINES = [
    ((80.0, 40.0), (120.0, 24.0), 0.0),
    ((200.0, 120.0), (140.0, 32.0), 0.35),
    ((90.0, 140.0), (100.0, 28.0), -0.25),
]


def best_iou(dets, quad) -> float:
    return max(ref_iou(d.polygon.reshape(-1), quad.reshape(-1)) for d in dets)


def test_pipeline_recovers_text_lines():
    score, geo = east_maps(LINES, hw=(48, 80), noise=1.0)
    dets = east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig())
    assert len(dets) == len(LINES)
    for line in LINES:
        assert best_iou(dets, true_quad(*line)) > 0.9
    for d in dets:
        assert d.polygon.shape == (4, 2) and d.polygon.dtype == np.float32
        assert 0.1 < d.score <= 0.95 + 1e-6 and d.entropy is None


def test_quads_are_clockwise_from_top_left():
    score, geo = east_maps(LINES, hw=(48, 80))
    for det in east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig()):
        tl, tr, br, bl = det.polygon.astype(np.float64)
        x, y = det.polygon[:, 0].astype(np.float64), det.polygon[:, 1].astype(np.float64)
        assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0  # clockwise with y down
        assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1] and tr[1] < br[1]


def test_rescaling_to_original_size():
    score, geo = east_maps(LINES, hw=(48, 80))
    small = east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig())
    big = east_postprocess(score, geo, (576, 1280), (192, 320), EASTPostProcessConfig())
    assert len(big) == len(small) == len(LINES)
    scale = np.array([4.0, 3.0], dtype=np.float32)
    for s, b in zip(small, big):
        # Each size is rounded once from the same quad: within a rounding step of each other.
        assert np.all(np.abs(b.polygon - s.polygon * scale) <= scale / 2 + 0.5)
        assert b.score == s.score
    for line in LINES:
        assert best_iou(big, true_quad(*line) * scale) > 0.9
    # Coordinates stay inside the image, edges included.
    edge = [((20.0, 20.0), (80.0, 40.0), 0.0)]
    score, geo = east_maps(edge, hw=(48, 80))
    (det,) = east_postprocess(score, geo, (96, 160), (192, 320), EASTPostProcessConfig())
    assert det.polygon.min() >= 0


def test_box_thresh_uses_mean_score_inside_the_final_quad():
    score, geo = east_maps([LINES[0]], hw=(48, 80), value=0.9)
    (det,) = east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig())
    # The full quad covers the kernel (0.9) and its unshrunk border (0.02).
    quad = (true_quad(*LINES[0]).astype(np.int32) // STRIDE).astype(np.int32)
    mask = np.zeros(score.shape, np.uint8)
    cv2.fillPoly(mask, [quad], 1)
    assert det.score == pytest.approx(cv2.mean(score, mask)[0], abs=0.02)
    assert 0.3 < det.score < 0.9
    keep = EASTPostProcessConfig(box_thresh=det.score - 1e-3)
    drop = EASTPostProcessConfig(box_thresh=det.score + 1e-3)
    assert len(east_postprocess(score, geo, (192, 320), (192, 320), keep)) == 1
    assert east_postprocess(score, geo, (192, 320), (192, 320), drop) == []


def test_score_thresh_and_empty_maps():
    score, geo = east_maps([LINES[0]], hw=(48, 80), value=0.85)
    assert len(east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig())) == 1
    assert east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig(score_thresh=0.9)) == []
    assert east_postprocess(np.zeros((48, 80)), np.zeros((5, 48, 80)), (192, 320), (192, 320),
                            EASTPostProcessConfig()) == []


def test_entropy_is_averaged_over_the_scored_pixels():
    score, geo = east_maps([LINES[0]], hw=(48, 80), value=0.9)
    (same,) = east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig(), entropy=score)
    assert same.entropy == pytest.approx(same.score, abs=1e-9)
    flat = np.full(score.shape, 0.25, np.float32)
    (det,) = east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig(), entropy=flat)
    assert det.entropy == pytest.approx(0.25)


def test_quad_geometry_pipeline():
    (center, size, angle) = LINES[1]
    score, _ = east_maps([LINES[1]], hw=(48, 80))
    quad = true_quad(center, size, angle)
    ys, xs = np.mgrid[0:48, 0:80]
    origins = np.stack([xs, ys], axis=-1).astype(np.float64) * STRIDE  # (H, W, 2)
    geo = (quad[None, None] - origins[:, :, None]).reshape(48, 80, 8).transpose(2, 0, 1)
    (det,) = east_postprocess(score, geo.astype(np.float32), (192, 320), (192, 320), EASTPostProcessConfig())
    assert ref_iou(det.polygon.reshape(-1), quad.reshape(-1)) > 0.95


def test_max_candidates_keeps_the_best_in_raster_order():
    score, geo = east_maps([LINES[0]], hw=(48, 80))
    rng = np.random.default_rng(0)
    score[score > 0.5] = rng.uniform(0.81, 1.0, int((score > 0.5).sum()))
    dets = east_postprocess(score, geo, (192, 320), (192, 320), EASTPostProcessConfig(max_candidates=5))
    assert len(dets) == 1 and best_iou(dets, true_quad(*LINES[0])) > 0.9


def test_bad_inputs_are_rejected():
    with pytest.raises(UserError):
        EASTPostProcessConfig(nms_thresh=1.5)
    with pytest.raises(UserError):
        EASTPostProcessConfig(max_candidates=0)
    score, geo = np.zeros((8, 8), np.float32), np.zeros((5, 8, 8), np.float32)
    with pytest.raises(ValueError):
        east_postprocess(score, geo[:, :4], (32, 32), (32, 32), EASTPostProcessConfig())
    with pytest.raises(ValueError):
        east_postprocess(score, geo, (32, 32), (30, 32), EASTPostProcessConfig())
    with pytest.raises(ValueError):
        east_postprocess(score, geo, (32, 32), (32, 32), EASTPostProcessConfig(), entropy=np.zeros((4, 4)))


def test_predictor_runs_east_post_processing():
    import torch

    from sdet.config import Config
    from sdet.deploy.predictor import Predictor
    from sdet.detectors import FAMILIES
    from sdet.models.detector import DetectorOutput

    score, geo = east_maps(LINES, hw=(48, 80), noise=1.0)
    logit = np.log(score / (1 - score))

    class FakeEAST(torch.nn.Module):
        """Stands in for the EAST detector: fixed maps whatever the image."""

        text_key = "score"

        def forward(self, images):
            logits = {"score": torch.from_numpy(logit)[None, None], "geo": torch.from_numpy(geo)[None]}
            return DetectorOutput(logits=logits, features=None)

    cfg = Config()
    cfg.model.type = "east"
    cfg.post.east_box_thresh = 0.1
    pred = Predictor(FakeEAST(), cfg, torch.device("cpu")).from_tensor(torch.zeros(1, 3, 192, 320), (384, 640), True)
    assert len(pred.detections) == len(LINES) and pred.text_map.shape == (48, 80)
    for line in LINES:
        assert best_iou(pred.detections, true_quad(*line) * 2) > 0.9
    assert all(0 <= d.entropy <= 1 for d in pred.detections)
    with pytest.raises(ValueError):
        FAMILIES["east"].postprocess(score, (192, 320), cfg, None)
