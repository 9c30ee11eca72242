"""EAST labels: hand-checked maps, label invariances, and targets -> decode -> NMS round trips."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import shapely

from sdet.detectors.east.targets import (
    canonical_quads,
    decode,
    decode_quad,
    decode_rbox,
    make_east_targets,
    rbox_params,
    shrink_quads,
)

# x in [20, 100], y in [40, 72]: an 80 x 32 axis-aligned box
RECT = np.array([[20, 40], [100, 40], [100, 72], [20, 72]], dtype=np.float64)


def test_shrink_moves_each_vertex_by_0_3_of_its_shorter_edge():
    # r_i = 32 at every vertex: every side moves in by 0.3 * 32 = 9.6
    expected = np.array([[29.6, 49.6], [90.4, 49.6], [90.4, 62.4], [29.6, 62.4]])
    assert np.allclose(shrink_quads(RECT[None])[0], expected)
    # a trapezoid: the longer pair (top/bottom) goes first, then the sides from the moved points
    trap = np.array([[0, 0], [100, 0], [90, 20], [10, 20]], dtype=np.float64)
    side = math.hypot(10, 20)
    r = np.array([side, side, side, side])  # every vertex touches a slanted side, the shorter edge
    out = shrink_quads(trap[None], 0.3)[0]
    p0 = trap[0] + [0.3 * r[0], 0]  # along the top edge first
    p3 = trap[3] + [0.3 * r[3], 0]
    d = (p3 - p0) / np.linalg.norm(p3 - p0)
    assert np.allclose(out[0], p0 + 0.3 * r[0] * d)
    assert np.allclose(out[3], p3 - 0.3 * r[3] * d)


def test_score_map_is_the_shrunk_quad_sampled_at_stride_4():
    t = make_east_targets(128, 128, [RECT], [False])
    assert t["score_map"].shape == (32, 32) and t["geo_map"].shape == (5, 32, 32)
    assert all(v.dtype == np.float32 for v in t.values())
    rows, cols = np.nonzero(t["score_map"])
    # shrunk box x in [29.6, 90.4], y in [49.6, 62.4]; pixel (r, c) is the point (4c, 4r)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (13, 15, 8, 22)
    assert t["score_map"].sum() == 3 * 15
    assert np.all(t["training_mask"] == 1)


def test_rbox_distances_at_a_hand_computed_pixel():
    t = make_east_targets(128, 128, [RECT], [False])
    # pixel row 13, col 10 is the point (40, 52)
    top, right, bottom, left, angle = t["geo_map"][:, 13, 10]
    assert (top, right, bottom, left) == pytest.approx((12, 60, 20, 20))
    assert angle == pytest.approx(0.0)
    assert np.all(t["geo_map"][:, t["score_map"] == 0] == 0)


def test_rotated_rbox_angle_sign_and_distances():
    # the 80 x 32 box turned so that its top edge rises to the right by 20 degrees (on screen)
    a = math.radians(20)
    centre = np.array([64.0, 64.0])
    u = np.array([-40, 40, 40, -40.0])
    v = np.array([-16, -16, 16, 16.0])
    quad = np.stack([centre[0] + u * math.cos(a) + v * math.sin(a), centre[1] - u * math.sin(a) + v * math.cos(a)], 1)
    t = make_east_targets(128, 128, [quad], [False])
    top, right, bottom, left, angle = t["geo_map"][:, 16, 16]  # the point (64, 64): the centre
    assert t["score_map"][16, 16] == 1
    assert angle == pytest.approx(a, abs=1e-5)
    assert (top, right, bottom, left) == pytest.approx((16, 40, 16, 40), abs=1e-3)
    # one pixel right of the centre, (68, 64): 4 px along the box frame is 4 cos a / -4 sin a
    top, right, bottom, left, _ = t["geo_map"][:, 16, 17]
    du, dv = 4 * math.cos(a), 4 * math.sin(a)
    assert (top, right, bottom, left) == pytest.approx((16 + dv, 40 - du, 16 - dv, 40 + du), abs=1e-3)


def test_angle_range_and_width_axis():
    for deg in (-89, -60, -45, -30, 0, 30, 44, 46, 60, 89):
        box = cv2.boxPoints(((100.0, 100.0), (80.0, 20.0), float(deg)))
        centre, angle, width, height = rbox_params(box[None])
        assert -math.pi / 4 - 1e-9 <= angle[0] < math.pi / 4
        assert sorted([width[0], height[0]]) == pytest.approx([20, 80], abs=1e-3)
        assert np.allclose(centre[0], 100, atol=1e-3)


def test_dont_care_and_tiny_boxes_are_masked_without_positives():
    tiny = np.array([[100, 100], [120, 100], [120, 106], [100, 106]], dtype=np.float64)  # 6 px < 10
    ignored = RECT + [0, 40]
    t = make_east_targets(128, 128, [RECT, ignored, tiny], [False, True, False], min_text_size=10)
    mask, score = t["training_mask"], t["score_map"]
    assert mask[20, 15] == 0 and score[20, 15] == 0  # inside the ignored box (60, 80)
    assert mask[25, 27] == 0 and score[25, 27] == 0  # inside the tiny box (108, 100)
    assert mask[14, 15] == 1 and score[14, 15] == 1  # the cared-for box is untouched
    assert mask[2, 2] == 1
    kept = make_east_targets(128, 128, [tiny], [False], min_text_size=4)
    assert kept["training_mask"].all() and kept["score_map"].sum() > 0


def test_no_polygons_and_odd_sizes():
    t = make_east_targets(70, 101, [], [], geometry="quad")
    assert t["score_map"].shape == (18, 26) and t["geo_map"].shape == (8, 18, 26)
    assert t["score_map"].sum() == 0 and t["training_mask"].all()


def test_polygons_with_more_vertices_use_their_min_area_rectangle():
    poly = np.array([[20, 40], [60, 36], [100, 40], [100, 72], [60, 76], [20, 72]], dtype=np.float64)
    t = make_east_targets(128, 128, [poly], [False])
    box = decode_rbox(t["score_map"], t["geo_map"], 0.5)[:, :8].reshape(-1, 4, 2)
    expected = shapely.Polygon(cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32))))
    assert all(_iou(shapely.Polygon(b), expected) > 0.999 for b in box)


@pytest.mark.parametrize("geometry", ["rbox", "quad"])
def test_labels_do_not_depend_on_vertex_order(geometry):
    quad = np.array([[30, 30], [95, 42], [90, 70], [25, 60]], dtype=np.float64)
    ref = make_east_targets(128, 128, [quad], [False], geometry=geometry)
    for variant in (np.roll(quad, 1, axis=0), np.roll(quad, 3, axis=0), quad[::-1], np.roll(quad[::-1], 2, axis=0)):
        t = make_east_targets(128, 128, [variant], [False], geometry=geometry)
        assert np.array_equal(t["score_map"], ref["score_map"])
        assert np.allclose(t["geo_map"], ref["geo_map"], atol=1e-4)


def test_canonical_quads_clockwise_from_top_left():
    quad = np.array([[20, 72], [100, 72], [100, 40], [20, 40]], dtype=np.float64)  # counter-clockwise, from BL
    assert np.allclose(canonical_quads(quad[None])[0], RECT)


def test_decode_matches_the_post_processor_convention():
    post = pytest.importorskip("sdet.detectors.east.postprocess")
    if not hasattr(post, "decode_candidates"):
        pytest.skip("sdet.detectors.east.postprocess has no decode_candidates")
    rng = np.random.default_rng(0)
    score = rng.uniform(size=(16, 20)).astype(np.float32)
    for channels, fn in ((5, decode_rbox), (8, decode_quad)):
        geo = rng.uniform(-1, 1, size=(channels, 16, 20)).astype(np.float32) * 30
        ours, theirs = fn(score, geo, 0.5), post.decode_candidates(score, geo, 0.5, 4)
        assert ours.shape == theirs.shape and np.allclose(ours, theirs)


def test_decode_validates_shapes():
    with pytest.raises(ValueError):
        decode(np.zeros((4, 4)), np.zeros((6, 4, 4)))
    with pytest.raises(ValueError):
        decode_rbox(np.zeros((4, 4)), np.zeros((5, 4, 5)))


# ----------------------------------------------------------------------------- round trip


def _iou(a, b) -> float:
    union = a.union(b).area
    return a.intersection(b).area / union if union > 0 else 0.0


def _greedy_nms(quads: np.ndarray, thresh: float = 0.2) -> np.ndarray:
    """Plain polygon NMS: the test's own, independent of sdet.detectors.east.postprocess."""
    order = np.argsort(-quads[:, 8], kind="stable")
    polys = shapely.polygons(quads[order, :8].reshape(-1, 4, 2))
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(order[i])
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        inter = shapely.area(shapely.intersection(polys[i], polys[rest]))
        union = shapely.area(polys[i]) + shapely.area(polys[rest]) - inter
        alive[rest[inter / np.maximum(union, 1e-9) > thresh]] = False
    return quads[keep]


def _random_scene(rng: np.random.Generator, geometry: str, size: int = 256, cell: int = 85):
    """One text box per grid cell (no overlaps): rotated rectangles, or jittered convex quads."""
    quads = []
    for cy in range(cell // 2, size - cell // 2 + 1, cell):
        for cx in range(cell // 2, size - cell // 2 + 1, cell):
            w, h = rng.uniform(30, 70), rng.uniform(12, 28)
            box = cv2.boxPoints(((float(cx), float(cy)), (w, h), float(rng.uniform(-90, 90)))).astype(np.float64)
            if geometry == "quad":
                box += rng.uniform(-3, 3, size=box.shape)
            quads.append(box)
    return quads


@pytest.mark.parametrize("geometry", ["rbox", "quad"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_recovers_every_box(geometry, seed):
    rng = np.random.default_rng(seed)
    quads = _random_scene(rng, geometry)
    t = make_east_targets(256, 256, quads, [False] * len(quads), geometry=geometry)
    # a perfect prediction: probabilities with the score map's ones, the target geometry
    candidates = decode(t["score_map"] * 0.9 + 0.05, t["geo_map"], 0.5, 4)
    assert len(candidates) == int(t["score_map"].sum())
    detections = [_greedy_nms(candidates)]
    post = pytest.importorskip("sdet.detectors.east.postprocess")
    if hasattr(post, "locality_aware_nms"):
        detections.append(post.locality_aware_nms(candidates, 0.2))
    for found in detections:
        assert len(found) == len(quads)
        polys = [shapely.Polygon(q) for q in found[:, :8].reshape(-1, 4, 2)]
        for gt in quads:
            best = max(_iou(shapely.Polygon(gt), p) for p in polys)
            assert best >= 0.95


def test_targets_are_fast_enough_for_the_data_pipeline():
    import time

    rng = np.random.default_rng(5)
    quads = _random_scene(rng, "rbox", size=512, cell=64)  # 64 boxes on a 512 crop
    start = time.perf_counter()
    for _ in range(5):
        make_east_targets(512, 512, quads, [False] * len(quads))
    assert (time.perf_counter() - start) / 5 < 0.2
